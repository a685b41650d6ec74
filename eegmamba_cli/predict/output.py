"""What `predict` hands back: the per-window file (CSV or JSON), a summary table per task, and a plot.

Summaries:
* sleep: time in each stage;
* seizure: detected events. Rule: every window whose most probable class is the seizure class is a
  detection, and detections in consecutive windows (windows tile the recording without gaps) merge into
  one event from the first window's start to the last window's end;
* anything else (motor imagery, emotion, custom): how many windows each class won.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from ..console import UserError
from ..fileio import atomic_write_text, atomic_writer
from .run import Prediction, prob_columns

SLEEP_ORDER = ("W", "REM", "N1", "N2", "N3")  # hypnogram rows, top to bottom


# --- the per-window file ----------------------------------------------------------------------------

def write_windows(prediction: Prediction, path: Path) -> None:
    """CSV or JSON by the extension of `path`; written atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, prediction.windows.to_csv(index=False, float_format="%.6g"))
    elif suffix == ".json":
        atomic_write_text(path, json.dumps(as_json(prediction), indent=1) + "\n")
    else:
        raise UserError(f"{path}: --out must end in .csv or .json")


def as_json(prediction: Prediction) -> dict:
    head = prediction.head
    classes = head.class_names
    columns = prob_columns(classes)
    rows = [{"start_s": float(r.start_s), "end_s": float(r.end_s), "prediction": r.prediction,
             "probabilities": {c: float(getattr(r, col)) for c, col in zip(classes, columns)}}
            for r in prediction.windows.itertuples(index=False)]
    return {"recording": str(prediction.recording), "checkpoint": str(head.checkpoint), "dataset": head.name,
            "task": head.task, "precision": prediction.precision, "class_names": classes,
            "window_s": head.window_s,
            "sampling_rate_hz": prediction.sfreq, "duration_s": prediction.duration_s,
            "channels": channel_rows(prediction), "summary": summary(prediction), "notes": prediction.notes,
            "windows": rows}


def channel_rows(prediction: Prediction) -> list[dict]:
    return [{"expected": s.expected, "from": s.describe(prediction.labels), "how": s.how}
            for s in prediction.sources]


# --- summaries ---------------------------------------------------------------------------------------

def summary(prediction: Prediction) -> dict:
    task = prediction.head.task
    if task == "sleep":
        return {"kind": "sleep stages", "stages": stage_times(prediction)}
    if task == "seizure":
        return {"kind": "seizure events", "rule": EVENT_RULE, "events": seizure_events(prediction)}
    return {"kind": "class counts", "counts": class_counts(prediction)}


EVENT_RULE = ("a window is a detection when its most probable class is the seizure class; detections in "
              "consecutive windows merge into one event")


def class_counts(prediction: Prediction) -> dict[str, int]:
    counts = prediction.windows["prediction"].value_counts()
    return {c: int(counts.get(c, 0)) for c in prediction.head.class_names}


def stage_times(prediction: Prediction) -> dict[str, dict]:
    window = prediction.head.window_s
    total = len(prediction.windows) * window
    return {stage: {"windows": n, "minutes": n * window / 60, "percent": 100 * n * window / total}
            for stage, n in class_counts(prediction).items()}


def seizure_class(class_names: list[str]) -> int:
    lowered = [c.lower() for c in class_names]
    return lowered.index("seizure") if "seizure" in lowered else len(class_names) - 1


def seizure_events(prediction: Prediction) -> list[dict]:
    classes = prediction.head.class_names
    k = seizure_class(classes)
    hits = (prediction.probabilities.argmax(1) == k)
    p = prediction.probabilities[:, k]
    starts, ends = prediction.windows["start_s"].to_numpy(), prediction.windows["end_s"].to_numpy()
    events, i = [], 0
    while i < len(hits):
        if not hits[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(hits) and hits[j + 1] and abs(starts[j + 1] - ends[j]) < 1e-6:
            j += 1
        events.append({"start_s": float(starts[i]), "end_s": float(ends[j]), "windows": j - i + 1,
                       "peak_probability": float(p[i:j + 1].max())})
        i = j + 1
    return events


def summary_tables(prediction: Prediction) -> list[Table]:
    """The mapping used and the task's summary, for the console (stderr)."""
    head = prediction.head
    mapping = Table(title=f"Channels for the {head.name} head", title_justify="left")
    for column in ("model channel", "from the file", "how"):
        mapping.add_column(column)
    for row in channel_rows(prediction):
        mapping.add_row(row["expected"], row["from"], row["how"])
    return [mapping, _summary_table(prediction)]


def _summary_table(prediction: Prediction) -> Table:
    head, n = prediction.head, len(prediction.windows)
    title = f"{prediction.recording.name}: {n} windows of {head.window_s:g} s ({head.name})"
    table = Table(title=title, title_justify="left")
    if head.task == "sleep":
        for column in ("stage", "windows", "minutes", "%"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for stage, t in stage_times(prediction).items():
            table.add_row(stage, str(t["windows"]), f"{t['minutes']:.1f}", f"{t['percent']:.1f}")
    elif head.task == "seizure":
        events = seizure_events(prediction)
        table.caption = f"{len(events)} event(s); {EVENT_RULE}"
        for column in ("event", "start", "end", "duration (s)", "windows", "peak p"):
            table.add_column(column, justify="right")
        for i, e in enumerate(events, 1):
            table.add_row(str(i), clock(e["start_s"]), clock(e["end_s"]), f"{e['end_s'] - e['start_s']:g}",
                          str(e["windows"]), f"{e['peak_probability']:.2f}")
    else:
        for column in ("class", "windows", "%"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for name, count in class_counts(prediction).items():
            table.add_row(name, str(count), f"{100 * count / n:.1f}")
    return table


def clock(seconds: float) -> str:
    """Seconds from the recording start as h:mm:ss."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


# --- plots -------------------------------------------------------------------------------------------

def save_plot(prediction: Prediction, path: Path) -> None:
    """Hypnogram (sleep), seizure-probability timeline (seizure), class probabilities (others); PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state, headless-safe

    if Path(path).suffix.lower() != ".png":
        raise UserError(f"{path}: --plot must end in .png")
    head = prediction.head
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    hours, unit = _time_axis(prediction)
    if head.task == "sleep":
        _hypnogram(fig, prediction, hours, unit)
    elif head.task == "seizure":
        _seizure_timeline(fig, prediction, hours, unit)
    else:
        _class_probabilities(fig, prediction, hours, unit)
    fig.suptitle(f"{prediction.recording.name}: {head.name} head", fontsize=10)
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


def _time_axis(prediction: Prediction) -> tuple[np.ndarray, str]:
    starts = prediction.windows["start_s"].to_numpy()
    edges = np.append(starts, prediction.windows["end_s"].to_numpy()[-1])
    if edges[-1] >= 2 * 3600:
        return edges / 3600, "hours"
    if edges[-1] >= 120:
        return edges / 60, "minutes"
    return edges, "seconds"


def _hypnogram(fig, prediction: Prediction, t: np.ndarray, unit: str) -> None:
    classes = prediction.head.class_names
    order = [s for s in SLEEP_ORDER if s in classes] + [c for c in classes if c not in SLEEP_ORDER]
    level = {name: len(order) - 1 - i for i, name in enumerate(order)}
    y = np.array([level[c] for c in prediction.windows["prediction"]], dtype=float)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax.stairs(y, t, baseline=None, color="black", linewidth=1.2)
    if "REM" in level:  # REM drawn thick, as on paper hypnograms
        rem = np.where(y == level["REM"], y, np.nan)
        ax.stairs(rem, t, baseline=None, color="tab:red", linewidth=3)
    ax.set_yticks(list(level.values()), list(level.keys()))
    ax.set_ylim(-0.5, len(order) - 0.5)
    ax.set_ylabel("stage")
    ax.set_title("hypnogram (most probable stage per window)", fontsize=9)
    _stacked(ax2, prediction, t)
    ax2.set_xlabel(f"time ({unit})")


def _stacked(ax, prediction: Prediction, t: np.ndarray) -> None:
    proba = prediction.probabilities
    bottom = np.zeros(len(proba))
    for k, name in enumerate(prediction.head.class_names):
        ax.stairs(bottom + proba[:, k], t, baseline=bottom, fill=True, label=name, alpha=0.85)
        bottom = bottom + proba[:, k]
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend(loc="upper right", fontsize=7, ncol=min(5, proba.shape[1]))


def _seizure_timeline(fig, prediction: Prediction, t: np.ndarray, unit: str) -> None:
    k = seizure_class(prediction.head.class_names)
    ax = fig.subplots()
    ax.stairs(prediction.probabilities[:, k], t, baseline=None, color="tab:red", linewidth=1.2,
              label="p(seizure)")
    scale = {"hours": 3600, "minutes": 60, "seconds": 1}[unit]
    for e in seizure_events(prediction):
        ax.axvspan(e["start_s"] / scale, e["end_s"] / scale, color="tab:red", alpha=0.15)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("seizure probability")
    ax.set_title("shaded: detected events (consecutive seizure windows)", fontsize=9)


def _class_probabilities(fig, prediction: Prediction, t: np.ndarray, unit: str) -> None:
    ax = fig.subplots()
    _stacked(ax, prediction, t)
    ax.set_xlabel(f"time ({unit})")
    ax.set_title("class probabilities per window", fontsize=9)
