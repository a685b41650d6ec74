"""Synthetic EEG with the structure each task looks for, on a 1/f background (µV, native rates).

Preprocessing z-scores every window and channel, so amplitude alone carries nothing: every class here
differs in spectral shape, waveform or its spatial pattern across channels, as real EEG does:

* sleep: alpha in W, theta in N1, spindles and K-complexes in N2, delta in N3, mixed theta with saw-tooth
  waves in REM;
* seizure: rhythmic 3-5 Hz spike-and-wave discharges over most electrodes;
* motor imagery: mu (8-12 Hz) and beta desynchronisation over the motor cortex opposite the imagined hand
  (C4 for the left hand, C3 for the right), central for the feet, both sides for the tongue;
* emotion: frontal alpha asymmetry and band-power differences between frontal, temporal and posterior sites.

Every function takes a numpy Generator, so a seed fixes the whole corpus.
"""
from __future__ import annotations

import numpy as np

# --- building blocks ---------------------------------------------------------------------------------

def pink(rng: np.random.Generator, shape: tuple[int, ...], exponent: float = 1.0) -> np.ndarray:
    """Noise with power ~ 1/f^exponent along the last axis, unit standard deviation."""
    n = shape[-1]
    spectrum = rng.standard_normal((*shape[:-1], n // 2 + 1)) + 1j * rng.standard_normal((*shape[:-1], n // 2 + 1))
    f = np.arange(n // 2 + 1, dtype=float)
    f[0] = 1.0
    spectrum *= f ** (-exponent / 2)
    spectrum[..., 0] = 0
    x = np.fft.irfft(spectrum, n=n)
    return x / (x.std(axis=-1, keepdims=True) + 1e-12)


def band(rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, low: float, high: float) -> np.ndarray:
    """Gaussian noise band-limited to [low, high] Hz (a rhythm with natural waxing and waning), unit std."""
    n = shape[-1]
    spectrum = rng.standard_normal((*shape[:-1], n // 2 + 1)) + 1j * rng.standard_normal((*shape[:-1], n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / sfreq)
    spectrum *= ((f >= low) & (f <= high))
    x = np.fft.irfft(spectrum, n=n)
    return x / (x.std(axis=-1, keepdims=True) + 1e-12)


def smooth_steps(values: np.ndarray, samples_per_step: int, ramp: int) -> np.ndarray:
    """Piecewise-constant gains (one per step) with linear ramps of `ramp` samples between steps."""
    x = np.repeat(np.asarray(values, dtype=float), samples_per_step, axis=-1)
    if ramp > 1:
        kernel = np.ones(ramp) / ramp
        pad = ramp // 2
        padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, ramp - 1 - pad)], mode="edge")
        x = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), -1, padded)
    return x


def burst(length: int) -> np.ndarray:
    """A smooth (Hann) envelope."""
    return np.hanning(max(length, 3))


def add_at(signal: np.ndarray, start: int, wave: np.ndarray) -> None:
    """Add `wave` into `signal` from sample `start`, clipped to the signal."""
    stop = min(len(signal), start + len(wave))
    if start < stop:
        signal[max(start, 0):stop] += wave[max(0, -start):stop - start]


# --- sleep -------------------------------------------------------------------------------------------

STAGES = ("W", "N1", "N2", "N3", "REM")
# µV of each component per stage: 1/f background, delta 0.5-2, theta 4-7, alpha 8-12, beta 15-25
STAGE_MIX = {
    "W": dict(background=10, delta=3, theta=5, alpha=28, beta=9),
    "N1": dict(background=10, delta=6, theta=24, alpha=6, beta=4),
    "N2": dict(background=10, delta=10, theta=14, alpha=3, beta=3),
    "N3": dict(background=10, delta=45, theta=8, alpha=2, beta=2),
    "REM": dict(background=9, delta=4, theta=13, alpha=4, beta=7),
}
BANDS = dict(delta=(0.5, 2.0), theta=(4.0, 7.0), alpha=(8.0, 12.0), beta=(15.0, 25.0))


def hypnogram(rng: np.random.Generator, n_epochs: int) -> list[str]:
    """A night in runs: wake, light sleep, deep sleep, REM, cycling. Runs are short enough for every
    stage to appear (n_epochs >= 6)."""
    cycle = ["W", "N1", "N2", "N3", "N2", "REM"]
    longest = max(1, n_epochs // 8)
    stages, i = [], 0
    while len(stages) < n_epochs:
        stages += [cycle[i % len(cycle)]] * int(rng.integers(1, longest + 1))
        i += 1
    return stages[:n_epochs]


def sleep_eeg(rng: np.random.Generator, stages: list[str], sfreq: float, epoch_s: float = 30.0) -> np.ndarray:
    """One EEG channel (µV) following `stages`, one stage per epoch."""
    per = int(round(epoch_s * sfreq))
    n = per * len(stages)
    ramp = int(sfreq)  # 1-s transitions between epochs
    x = np.zeros(n)
    for name in ("background", *BANDS):
        gains = np.array([STAGE_MIX[s][name] for s in stages], dtype=float) * rng.uniform(0.8, 1.2, len(stages))
        source = pink(rng, (n,)) if name == "background" else band(rng, (n,), sfreq, *BANDS[name])
        x += smooth_steps(gains, per, ramp) * source
    for k, stage in enumerate(stages):
        start = k * per
        if stage == "N2":
            _spindles_and_k(rng, x, start, per, sfreq)
        elif stage == "REM":
            _sawtooth(rng, x, start, per, sfreq)
    return x


def _spindles_and_k(rng, x: np.ndarray, start: int, per: int, sfreq: float) -> None:
    for _ in range(int(rng.integers(2, 5))):  # sleep spindles: 0.5-1.5 s of 12-14 Hz
        length = int(rng.uniform(0.5, 1.5) * sfreq)
        t = np.arange(length) / sfreq
        wave = 30 * burst(length) * np.sin(2 * np.pi * rng.uniform(12, 14) * t + rng.uniform(0, 6.3))
        add_at(x, start + int(rng.integers(0, per - length)), wave)
    for _ in range(int(rng.integers(1, 3))):  # K-complexes: a sharp negative then a slower positive wave
        t = np.arange(int(1.2 * sfreq)) / sfreq
        wave = -90 * np.exp(-((t - 0.25) / 0.08) ** 2) + 50 * np.exp(-((t - 0.65) / 0.2) ** 2)
        add_at(x, start + int(rng.integers(0, per - len(t))), wave)


def _sawtooth(rng, x: np.ndarray, start: int, per: int, sfreq: float) -> None:
    for _ in range(int(rng.integers(2, 4))):  # saw-tooth waves: 2-6 Hz trains of 1-3 s
        length = int(rng.uniform(1.0, 3.0) * sfreq)
        f = rng.uniform(2.5, 5.0)
        phase = (np.arange(length) / sfreq * f) % 1.0
        wave = 22 * burst(length) * (2 * phase - 1)
        add_at(x, start + int(rng.integers(0, per - length)), wave)


# --- seizures ----------------------------------------------------------------------------------------

def scalp_background(rng: np.random.Generator, n_electrodes: int, n: int, sfreq: float,
                     posterior: np.ndarray) -> np.ndarray:
    """Referential EEG (µV): 1/f noise shared between neighbours plus posterior alpha."""
    own = pink(rng, (n_electrodes, n))
    shared = pink(rng, (3, n))
    mixing = rng.uniform(-0.6, 0.6, (n_electrodes, 3))
    alpha = band(rng, (1, n), sfreq, 8.5, 11.0)[0]
    x = 15 * own + 8 * mixing @ shared + 10 * posterior[:, None] * alpha[None, :]
    return x + 3 * rng.standard_normal((n_electrodes, n))


def spike_wave(rng: np.random.Generator, n: int, sfreq: float) -> np.ndarray:
    """A spike-and-wave train (unit peak): 3-5 Hz, frequency slowing slightly over the discharge."""
    f0 = rng.uniform(3.0, 5.0)
    freq = np.linspace(f0, f0 * 0.8, n)
    phase = np.cumsum(freq) / sfreq  # cycles
    cyc = phase % 1.0
    spike = -np.exp(-((cyc - 0.1) / 0.035) ** 2)
    wave = 0.6 * np.exp(-((cyc - 0.45) / 0.15) ** 2)
    return spike + wave


# Generalised spike-and-wave discharges are frontally dominant and reach the back of the head a few tens
# of ms later. Per scalp region (the letters of the 10-20 name): (µV, delay in ms). One map for every
# patient, so that bipolar derivations, which subtract neighbours, see the same field in every patient;
# the delays keep the sharp spikes in a bipolar pair even where the two amplitudes are alike.
DISCHARGE = {"FP": (300, 0), "AF": (260, 5), "F": (210, 10), "FC": (170, 15), "FT": (180, 15), "C": (130, 20),
             "T": (160, 25), "CP": (100, 28), "TP": (120, 30), "P": (80, 35), "PO": (60, 42), "O": (45, 50)}


def discharge_field(rng: np.random.Generator, electrodes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(µV, delay s) of a discharge at each electrode: DISCHARGE by region, within ±5 % and ±3 ms per
    patient."""
    regions = ["".join(ch for ch in e.upper() if ch.isalpha()).rstrip("Z") or "C" for e in electrodes]
    uv, ms = np.array([DISCHARGE.get(r, DISCHARGE.get(r[:1], (120, 20))) for r in regions], dtype=float).T
    n = len(electrodes)
    return uv * rng.uniform(0.95, 1.05, n), (ms + rng.uniform(-3, 3, n)).clip(0) / 1000


def add_seizure(rng: np.random.Generator, x: np.ndarray, start: int, stop: int, sfreq: float,
                field: tuple[np.ndarray, np.ndarray]) -> None:
    """Add a generalised discharge with `field` = (µV, delay s) per electrode to referential EEG `x`
    (electrodes, samples) over [start, stop)."""
    n = stop - start
    train = spike_wave(rng, n, sfreq)
    envelope = np.minimum(1.0, np.minimum(np.arange(n), n - np.arange(n)) / (2.0 * sfreq))  # 2-s ramps
    gains, delays = field
    for e in range(x.shape[0]):
        x[e, start:stop] += gains[e] * envelope * np.roll(train, int(round(delays[e] * sfreq)))


# --- motor imagery -----------------------------------------------------------------------------------

# Which electrodes desynchronise (ERD) or synchronise (ERS) for each imagined movement.
MI_PATTERNS = {
    "left hand": dict(erd=("C4", "CP4", "FC4", "C6", "C2", "CP6", "FC6", "T4", "CP2", "FC2")),
    "right hand": dict(erd=("C3", "CP3", "FC3", "C5", "C1", "CP5", "FC5", "T3", "CP1", "FC1")),
    "feet": dict(erd=("Cz", "FCz", "CPz", "C1", "C2", "Pz", "FC1", "FC2"), ers=("C3", "C4", "C5", "C6")),
    "tongue": dict(erd=("C5", "C6", "CP3", "CP4", "FC3", "FC4", "C3", "C4"), ers=("Cz", "FCz", "CPz")),
}
MOTOR = ("C3", "C4", "Cz", "C1", "C2", "C5", "C6", "CP1", "CP2", "CP3", "CP4", "CP5", "CP6", "CPz",
         "FC1", "FC2", "FC3", "FC4", "FC5", "FC6", "FCz", "T3", "T4", "Pz")


def motor_imagery(rng: np.random.Generator, channels: tuple[str, ...], n: int, sfreq: float,
                  events: list[tuple[int, int, str]], mu_hz: float) -> np.ndarray:
    """(channels, n) µV: background plus mu and beta over the motor strip, desynchronised (ERD) or
    synchronised (ERS) during each imagery event `(start, stop, movement)`, with 0.5-s ramps."""
    c = len(channels)
    x = 12 * pink(rng, (c, n)) + 3 * rng.standard_normal((c, n))
    mu = band(rng, (c, n), sfreq, mu_hz - 1.2, mu_hz + 1.2)
    beta = band(rng, (c, n), sfreq, 18, 24)
    gain = np.array([1.0 if ch in MOTOR else 0.25 for ch in channels])
    modulation = np.ones((c, n))
    ramp_len = 0.5 * sfreq
    t = np.arange(n)
    for start, stop, movement in events:
        ramp = np.clip(np.minimum(t - start, stop - t) / ramp_len, 0, 1)  # 0 outside, 1 inside
        pattern = MI_PATTERNS[movement]
        for i, ch in enumerate(channels):
            if ch in pattern.get("erd", ()):
                modulation[i] -= rng.uniform(0.75, 0.95) * ramp
            elif ch in pattern.get("ers", ()):
                modulation[i] += rng.uniform(0.5, 0.9) * ramp
    x += (34 * mu + 12 * beta) * gain[:, None] * modulation
    return x


# --- emotion -----------------------------------------------------------------------------------------

# band -> (low, high) Hz
EMOTION_BANDS = dict(theta=(4, 7), alpha=(8, 12), beta=(16, 28), gamma=(31, 45))


def emotion_eeg(rng: np.random.Generator, channels: tuple[str, ...], n: int, sfreq: float,
                gains: dict[str, dict[str, float]]) -> np.ndarray:
    """(channels, n) µV: background plus band-limited rhythms whose µV per channel `gains` gives as
    {channel: {band: µV}}; channels not listed get `gains["*"]`, else 4 µV in every band."""
    c = len(channels)
    x = 12 * pink(rng, (c, n)) + 3 * rng.standard_normal((c, n))
    for name, (low, high) in EMOTION_BANDS.items():
        if high >= sfreq / 2:
            continue
        amp = np.array([gains.get(ch.upper(), gains.get("*", {})).get(name, 4.0) for ch in channels])
        x += amp[:, None] * rng.uniform(0.8, 1.2, (c, 1)) * band(rng, (c, n), sfreq, low, high)
    return x


def deap_gains(high_valence: bool) -> dict[str, dict[str, float]]:
    """Frontal alpha asymmetry: less left-frontal alpha (more approach) for high valence; C4 band power."""
    strong, weak = dict(alpha=26, beta=6), dict(alpha=5, beta=16, gamma=8)
    left, right = (weak, strong) if high_valence else (strong, weak)
    return {"FP1": left, "F3": left, "AF3": left, "FP2": right, "F4": right, "AF4": right,
            "C4": dict(theta=18, beta=4) if high_valence else dict(theta=4, beta=16)}


SEED_GROUPS = {
    "frontal": ("FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8"),
    "temporal": ("FT7", "FT8", "T7", "T8", "TP7", "TP8"),
    "posterior": ("P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4",
                  "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2"),
}


def seed_gains(emotion: int) -> dict[str, dict[str, float]]:
    """0 negative: frontal theta; 1 neutral: posterior alpha; 2 positive: temporal beta and gamma. The
    rhythm is strongest over its region and present, weaker, everywhere else ("*")."""
    group, rhythm, elsewhere = [("frontal", dict(theta=22, alpha=4), dict(theta=12)),
                                ("posterior", dict(alpha=26), dict(alpha=12)),
                                ("temporal", dict(beta=14, gamma=12), dict(beta=9, gamma=7))][emotion]
    return {"*": elsewhere} | {ch: rhythm for ch in SEED_GROUPS[group]}
