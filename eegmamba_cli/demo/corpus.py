"""The demo's synthetic multi-task corpus, written in the native formats of all eight corpora.

Each writer puts one corpus under `<raw>/<name>/` in the layout its reader expects (docs/datasets.md), with
subjects chosen from the paper's fold table so that every fold has test subjects:

    siena     PNxx/PNxx-1.edf (512 Hz, `EEG Fp1`... old 10-20 names, EKG/SPO2) + Seizures-list-PNxx.txt
    chbmit    chbNN/chbNN_01.edf (256 Hz, 23 bipolar channels, two `-` dummies) + chbNN-summary.txt,
              RECORDS, RECORDS-WITH-SEIZURES
    sleepedf  sleep-cassette/SC4ss1E0-PSG.edf (7 signals, 100 Hz / 1 Hz) + SC4ss1EC-Hypnogram.edf (EDF+)
    shhs      polysomnography/edfs/shhs1/shhs1-NNNNNN.edf (EEG 125 Hz, ECG 250 Hz, EOG 50 Hz, SaO2 1 Hz)
              + annotations-events-nsrr/shhs1/shhs1-NNNNNN-nsrr.xml, and a subject list
    deap      data_preprocessed_python/sNN.dat (Python 2 pickle: data, labels)
    seed      Preprocessed_EEG/<n>_<date>.mat (<prefix>_eeg1..15) + label.mat + readme.txt
    shu       mat/sub-NNN_ses-01_task_motorimagery_eeg.mat (data, labels)
    bciiv2a   A0sT.gdf, A0sE.gdf (GDF 1.25, 25 channels, event table) + A0sE.mat (classlabel)
"""
from __future__ import annotations

import datetime as dt
import io
from itertools import islice
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from ..data.corpora import bciiv2a, chbmit, deap, seed, shu, siena
from ..data.edf import write_annotations_edf, write_edf
from ..fileio import atomic_write_bytes, atomic_write_text
from . import signals as sig
from .formats import GdfEvent, GdfSignal, SummaryFile, chbmit_summary, nsrr_xml, py2_pickle, \
    siena_seizure_list, stage_event, write_gdf


@dataclass(frozen=True)
class DemoSize:
    """How much data the demo writes (per subject); `subjects_per_fold` subjects in each of the 5 folds."""

    subjects_per_fold: int = 1
    seizure_minutes: float = 3.0  # Siena and CHB-MIT: one recording each, two seizures
    sleep_epochs: int = 48  # Sleep-EDF and SHHS: one night of this many 30-s epochs
    deap_trials: int = 16  # 63-s trials, one 60-s window each
    seed_sessions: int = 3  # 15 trials of 20 s, one window each
    shu_trials: int = 60  # 4-s trials
    bci_trials: int = 36  # per session (T and E), a multiple of 4

    @property
    def n_subjects(self) -> int:
        return 5 * self.subjects_per_fold


FULL = DemoSize()
TINY = DemoSize(seizure_minutes=0.5, sleep_epochs=10, deap_trials=4, seed_sessions=1, shu_trials=8, bci_trials=8)

START = dt.datetime(2021, 3, 14, 21, 30, 0)


def write_mat(path: Path, variables: dict) -> None:
    """A MAT v5 file, written through a buffer so it lands atomically like every other output."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    atomic_write_bytes(path, buf.getvalue())

def subjects(name: str, size: DemoSize) -> list[str]:
    """The demo's subjects of a corpus: the first `subjects_per_fold` of each fold of its declared fold
    table (fewer where a fold has fewer)."""
    from ..data.registry import get_corpus

    corpus = get_corpus(name)
    return [corpus.subject_id(number) for fold, numbers in sorted(corpus.info.folds.items()) if fold > 0
            for number in islice(numbers, size.subjects_per_fold)]


def write_all(raw: Path, size: DemoSize, seed_value: int) -> dict[str, list[str]]:
    """Write every corpus under raw/<name>/; returns the subjects written per corpus."""
    written = {}
    for k, (name, writer) in enumerate(WRITERS.items()):
        rng = np.random.default_rng([seed_value, k])
        folder = Path(raw) / name
        folder.mkdir(parents=True, exist_ok=True)
        written[name] = writer(folder, size, rng)
    return written


# --- seizure detection ---------------------------------------------------------------------------------

POSTERIOR = {"O1": 1.0, "O2": 1.0, "OZ": 1.0, "P3": 0.6, "P4": 0.6, "PZ": 0.6, "P7": 0.5, "P8": 0.5,
             "T5": 0.5, "T6": 0.5}


def _seizure_times(rng: np.random.Generator, seconds: float) -> list[tuple[int, int]]:
    """Two non-overlapping seizures of 15-30 % of the recording each, in whole seconds."""
    half = seconds / 2
    out = []
    for lo in (0.0, half):
        length = int(rng.uniform(0.15, 0.3) * seconds)
        start = int(lo + rng.uniform(0.1, 0.9) * (half - length))
        out.append((start, start + length))
    return out


def _scalp(rng, electrodes: list[str], seconds: float, sfreq: float, seizures) -> np.ndarray:
    n = int(seconds * sfreq)
    weights = np.array([POSTERIOR.get(e.upper(), 0.0) for e in electrodes])
    x = sig.scalp_background(rng, len(electrodes), n, sfreq, weights)
    field = sig.discharge_field(rng, electrodes)
    for a, b in seizures:
        sig.add_seizure(rng, x, int(a * sfreq), int(b * sfreq), sfreq, field)
    return x


def write_siena(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    sfreq, seconds = 512, size.seizure_minutes * 60
    names = list(siena.CHANNELS)
    done = []
    for k, pid in enumerate(subjects("siena", size)):
        seizures = _seizure_times(rng, seconds)
        eeg = _scalp(rng, names, seconds, sfreq, seizures)
        n = eeg.shape[1]
        extra = {"EKG EKG": 400 * np.sin(2 * np.pi * 1.2 * np.arange(n) / sfreq) ** 15,
                 "SPO2": np.full(n, 97.0) + rng.normal(0, 0.2, n)}
        labels = [f"EEG {c}" for c in names] + list(extra)
        start = START + dt.timedelta(hours=k, minutes=7 * k)
        (folder / pid).mkdir(exist_ok=True)
        name = f"{pid}-1.edf"
        write_edf(folder / pid / name, labels, [sfreq] * len(labels), [*eeg, *extra.values()], start=start)
        listed = [(name, start, start + dt.timedelta(seconds=seconds), start + dt.timedelta(seconds=a),
                   start + dt.timedelta(seconds=b)) for a, b in seizures]
        atomic_write_bytes(folder / pid / f"Seizures-list-{pid}.txt",
                           siena_seizure_list(pid, sfreq, listed).encode("latin-1"))
        done.append(pid)
    return done


CHB_ELECTRODES = sorted({e for pair in chbmit.CHANNELS for e in pair.split("-")})


def write_chbmit(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    sfreq, seconds = 256, size.seizure_minutes * 60
    records, done = [], []
    for case in subjects("chbmit", size):
        seizures = _seizure_times(rng, seconds)
        ref = dict(zip(CHB_ELECTRODES, _scalp(rng, CHB_ELECTRODES, seconds, sfreq, seizures)))
        bipolar = [ref[a] - ref[b] for a, b in (pair.split("-") for pair in chbmit.CHANNELS)]
        labels = list(chbmit.CHANNELS[:4]) + ["-"] + list(chbmit.CHANNELS[4:]) + ["-"]
        zeros = np.zeros_like(bipolar[0])
        data = bipolar[:4] + [zeros] + bipolar[4:] + [zeros]
        (folder / case).mkdir(exist_ok=True)
        name = f"{case}_01.edf"
        write_edf(folder / case / name, labels, [sfreq] * len(labels), data, start=START,
                  physical=[(-3276.8, 3276.8)] * len(labels), digital=(-32767, 32767))
        end = START + dt.timedelta(seconds=seconds)
        summary = chbmit_summary(chbmit.CHANNELS, [SummaryFile(name, seizures, START.strftime("%H:%M:%S"),
                                                               end.strftime("%H:%M:%S"))], sfreq)
        atomic_write_text(folder / case / f"{case}-summary.txt", summary)
        records.append(f"{case}/{name}")
        done.append(case)
    atomic_write_text(folder / "RECORDS", "\n".join(records) + "\n")
    atomic_write_text(folder / "RECORDS-WITH-SEIZURES", "\n".join(records) + "\n\n")
    return done


# --- sleep staging -----------------------------------------------------------------------------------

SLEEPEDF_TEXT = {"W": "Sleep stage W", "N1": "Sleep stage 1", "N2": "Sleep stage 2", "N3": "Sleep stage 3",
                 "REM": "Sleep stage R"}
NSRR_CONCEPT = {"W": "Wake|0", "N1": "Stage 1 sleep|1", "N2": "Stage 2 sleep|2", "N3": "Stage 3 sleep|3",
                "REM": "REM sleep|5"}


def runs(stages: list[str], epoch_s: float = 30.0) -> list[tuple[float, float, str]]:
    """(onset, duration, stage) of each run of equal stages."""
    out: list[list] = []
    for k, stage in enumerate(stages):
        if out and out[-1][2] == stage:
            out[-1][1] += epoch_s
        else:
            out.append([k * epoch_s, epoch_s, stage])
    return [tuple(r) for r in out]


def night(rng: np.random.Generator, size: DemoSize) -> list[str]:
    return sig.hypnogram(rng, size.sleep_epochs)


def write_sleepedf(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    out = folder / "sleep-cassette"
    out.mkdir(exist_ok=True)
    done = []
    for ss in subjects("sleepedf", size):
        stages = night(rng, size)
        seconds = 30 * len(stages)
        eeg = [sig.sleep_eeg(rng, stages, 100.0) for _ in range(2)]  # Fpz-Cz, Pz-Oz
        eog = 40 * sig.pink(rng, (seconds * 100,))
        slow = [np.full(seconds, v) + rng.normal(0, 0.5, seconds) for v in (0.0, 0.0, 36.8, 0.0)]
        labels = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal", "EMG submental",
                  "Temp rectal", "Event marker"]
        physical = [(-500.0, 500.0)] * 2 + [(-1009.0, 1009.0), (-2048.0, 2047.0), (-5.0, 5.0), (34.0, 40.0),
                                             (-2048.0, 2047.0)]
        start = START.replace(hour=22)
        write_edf(out / f"SC4{ss}1E0-PSG.edf", labels, [100] * 3 + [1] * 4, [*eeg, eog, *slow], start=start,
                  physical=physical, digital=(-2048, 2047), record_s=30)
        annotations = [(a, d, SLEEPEDF_TEXT[s]) for a, d, s in runs(stages)]
        annotations.append((seconds, 3600.0, "Sleep stage ?"))  # as in the corpus: scored past the end
        write_annotations_edf(out / f"SC4{ss}1EC-Hypnogram.edf", annotations, start=start)
        done.append(ss)
    return done


def write_shhs(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    edfs = folder / "polysomnography/edfs/shhs1"
    xmls = folder / "polysomnography/annotations-events-nsrr/shhs1"
    edfs.mkdir(parents=True, exist_ok=True)
    xmls.mkdir(parents=True, exist_ok=True)
    done = []
    for nsrrid in subjects("shhs", size):
        stages = night(rng, size)
        seconds = 30 * len(stages)
        signals = {"SaO2": (1, np.full(seconds, 96.0) + rng.normal(0, 0.3, seconds), (0.0, 100.0)),
                   "EEG(sec)": (125, sig.sleep_eeg(rng, stages, 125.0), (-500.0, 500.0)),
                   "ECG": (250, 0.8 * np.sin(2 * np.pi * 1.1 * np.arange(seconds * 250) / 250) ** 21, (-2.0, 2.0)),
                   "EOG(L)": (50, 40 * sig.pink(rng, (seconds * 50,)), (-500.0, 500.0)),
                   "EEG": (125, sig.sleep_eeg(rng, stages, 125.0), (-500.0, 500.0))}
        labels = list(signals)
        write_edf(edfs / f"shhs1-{nsrrid}.edf", labels, [s[0] for s in signals.values()],
                  [s[1] for s in signals.values()], start=START, physical=[s[2] for s in signals.values()],
                  units="uV", record_s=1)
        events = [stage_event(NSRR_CONCEPT[s], a, d) for a, d, s in runs(stages)]
        atomic_write_text(xmls / f"shhs1-{nsrrid}-nsrr.xml", nsrr_xml(events, seconds))
        done.append(nsrrid)
    # The paper's subjects are a list the user supplies (option subjects_file): the demo's own list.
    atomic_write_text(folder / "subjects.txt", "nsrrid\n" + "\n".join(done) + "\n")
    return done


# --- emotion ---------------------------------------------------------------------------------------

def write_deap(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    out = folder / "data_preprocessed_python"
    out.mkdir(exist_ok=True)
    n, sfreq = 8064, 128.0
    names = deap.FILE_CHANNELS[:32]
    done = []
    for subject in subjects("deap", size):
        high = rng.permutation(np.arange(size.deap_trials) % 2 == 1)  # balanced valence classes
        data = np.empty((size.deap_trials, 40, n), dtype=np.float32)
        ratings = rng.uniform(1, 9, (size.deap_trials, 4))
        for t, is_high in enumerate(high):
            data[t, :32] = sig.emotion_eeg(rng, names, n, sfreq, sig.deap_gains(bool(is_high)))
            data[t, 32:] = 20 * sig.pink(rng, (8, n))  # EOG, EMG, GSR, respiration, plethysmograph, temperature
            ratings[t, 0] = rng.uniform(5.5, 9.0) if is_high else rng.uniform(1.0, 3.5)
        atomic_write_bytes(out / f"{subject}.dat", py2_pickle({"data": data, "labels": ratings}))
        done.append(subject)
    return done


SEED_PREFIX = ("djc", "jl", "jj", "lqj", "ly", "mhw", "phl", "sxy", "wk", "ww", "wsf", "wyw", "xyl", "ys", "zjy")
SEED_LABELS = [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]  # the real label.mat


def write_seed(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    out = folder / "Preprocessed_EEG"
    out.mkdir(exist_ok=True)
    n = int(seed.WINDOW_S * seed.SFREQ) + 100  # one 20-s window per trial
    done = []
    for subject in subjects("seed", size):
        number = int(subject)
        for session in range(size.seed_sessions):
            date = (dt.date(2013, 10, 27) + dt.timedelta(days=7 * session + number)).strftime("%Y%m%d")
            trials = {f"{SEED_PREFIX[number - 1]}_eeg{k}": sig.emotion_eeg(
                rng, seed.FILE_CHANNELS, n, seed.SFREQ, sig.seed_gains(label + 1)).astype(np.float32)
                for k, label in enumerate(SEED_LABELS, 1)}
            write_mat(out / f"{number}_{date}.mat", trials)
        done.append(subject)
    write_mat(out / "label.mat", {"label": np.array([SEED_LABELS])})
    atomic_write_text(out / "readme.txt", "Synthetic SEED-format data written by `eegmamba demo` (200 Hz).\n")
    return done


# --- motor imagery ---------------------------------------------------------------------------------

def write_shu(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    out = folder / "mat"
    out.mkdir(exist_ok=True)
    n, sfreq = int(shu.WINDOW_S * shu.SFREQ), shu.SFREQ
    done = []
    for subject in subjects("shu", size):
        labels = rng.permutation(np.arange(size.shu_trials) % 2 + 1).astype(np.uint8)  # 1 left, 2 right
        mu = rng.uniform(9.5, 11.5)
        data = np.stack([sig.motor_imagery(rng, shu.FILE_CHANNELS, n, sfreq,
                                           [(0, n, "left hand" if lab == 1 else "right hand")], mu)
                         for lab in labels])
        write_mat(out / f"{subject}_ses-01_task_motorimagery_eeg.mat",
                         {"data": data.astype(np.float64), "labels": labels[None, :]})
        done.append(subject)
    return done


BCI_CUES = (769, 770, 771, 772)  # left hand, right hand, feet, tongue
BCI_MOVEMENTS = ("left hand", "right hand", "feet", "tongue")


def write_bciiv2a(folder: Path, size: DemoSize, rng: np.random.Generator) -> list[str]:
    done = []
    for subject in subjects("bciiv2a", size):
        mu = rng.uniform(9.5, 11.5)
        for session in ("T", "E"):
            classes = rng.permutation(np.arange(size.bci_trials) % 4)
            _write_bci_session(folder / f"{subject}{session}.gdf", rng, classes, mu, evaluation=session == "E")
            if session == "E":  # the evaluation cues are 783 (unknown); the classes come from A0sE.mat
                write_mat(folder / f"{subject}E.mat", {"classlabel": (classes + 1).astype(np.uint8)[:, None]})
        done.append(subject)
    return done


def _write_bci_session(path: Path, rng, classes: np.ndarray, mu: float, evaluation: bool) -> None:
    """An EOG run (eyes open / closed / movements), then runs of 12 trials separated by 100-sample gaps."""
    sfreq = int(bciiv2a.SFREQ)
    events = [GdfEvent(0, 32766), GdfEvent(sfreq, 276, 5 * sfreq), GdfEvent(7 * sfreq, 277, 5 * sfreq),
              GdfEvent(13 * sfreq, 1072, 5 * sfreq)]
    imagery, gaps, t = [], [], 19 * sfreq
    for k, cls in enumerate(classes):
        if k % 12 == 0:  # a new run: the gap recorded at the digital minimum, then the run start
            gaps.append((t, t + 100))
            t += 100
            events.append(GdfEvent(t, 32766))
            t += sfreq
        cue = t + 2 * sfreq
        events += [GdfEvent(t, 768, 6 * sfreq), GdfEvent(cue, 783 if evaluation else BCI_CUES[cls], 313)]
        imagery.append((cue, cue + 4 * sfreq, BCI_MOVEMENTS[cls]))
        t += int(rng.uniform(7.5, 8.5) * sfreq)
    n = -(-(t + sfreq) // sfreq) * sfreq  # whole 1-s records
    eeg = sig.motor_imagery(rng, tuple(bciiv2a.GDF_LABELS.values()), n, sfreq, imagery, mu)
    eog = 30 * sig.pink(rng, (3, n))
    signals = [GdfSignal(label, -250.0, 250.0) for label in [*bciiv2a.GDF_LABELS, *bciiv2a.EOG_LABELS]]
    digital = np.stack([s.to_digital(row) for s, row in zip(signals, [*eeg, *eog])])
    digital = np.maximum(digital, signals[0].digital_min + 1)  # the minimum marks the run gaps only
    for a, b in gaps:
        digital[:, a:b] = signals[0].digital_min
    write_gdf(path, signals, digital, sfreq, events)


WRITERS = {"siena": write_siena, "chbmit": write_chbmit, "sleepedf": write_sleepedf, "shhs": write_shhs,
           "deap": write_deap, "seed": write_seed, "shu": write_shu, "bciiv2a": write_bciiv2a}
