"""Tables, CSV and PNG for benchmark rows (lists of dicts). Files are written atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

from rich.markup import escape
from rich.table import Table

from ..fileio import atomic_write_bytes
from ..tables import columns_of, write_csv  # noqa: F401  (write_csv: re-exported for the benchmark command)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def plain_table(title: str, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Table:
    """One row per dict, one column per key."""
    columns = list(columns) if columns else columns_of(rows)
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if rows and isinstance(rows[0].get(col), (int, float)) else "left")
    for row in rows:
        table.add_row(*(escape(_fmt(row.get(c))) for c in columns))
    return table


def _short_status(status: str) -> str:
    return "skipped" if status.startswith("skipped") else status.split(" (")[0].split(":")[0]


def paper_tables(rows: Sequence[dict], caption: str) -> list[Table]:
    """The layout of the paper's Tables 9-10: per channel count, Model x Metric rows, lengths as columns."""
    tables = []
    lengths = sorted({r["length"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    for channels in sorted({r["channels"] for r in rows}):
        noun = "channel" if channels == 1 else "channels"
        table = Table(title=f"Model speed and memory, {channels} {noun}", caption=caption,
                      title_justify="left", caption_justify="left")
        table.add_column("Model")
        table.add_column("Metric")
        for length in lengths:
            table.add_column(str(length), justify="right")
        for model in models:
            cells = {r["length"]: r for r in rows if r["model"] == model and r["channels"] == channels}
            if not cells:
                continue
            kernels = {r.get("attention_kernel") for r in cells.values() if r["status"] == "ok"} - {None, "-"}
            ran = ", ".join(sorted(kernels))
            name = escape(model if not kernels or ran in model else f"{model} -> {ran}")
            metrics = (("Memory (MiB)", "peak_mem_mib", "{:.0f}"), ("Speed (it/s)", "it_per_s", "{:.2f}"),
                       ("Time (ms/batch)", "time_ms", "{:.1f}"))
            for metric, key, fmt in metrics:
                out = []
                for length in lengths:
                    r = cells.get(length)
                    if r is None:
                        out.append("")
                    elif r["status"] != "ok":
                        out.append(_short_status(r["status"]))
                    else:
                        out.append(fmt.format(r[key]))
                table.add_row(name if metric.startswith("Memory") else "", metric, *out)
        tables.append(table)
    return tables


def ratio_lines(rows: Sequence[dict], length: int | None = None) -> list[str]:
    """EEGMamba vs each Transformer variant at `length` (default: the longest length both measured)."""
    lines = []
    ok = [r for r in rows if r["status"] == "ok"]
    for channels in sorted({r["channels"] for r in ok}):
        mamba = {r["length"]: r for r in ok if r["channels"] == channels and r["model"] == "EEGMamba"}
        for model in sorted({r["model"] for r in ok} - {"EEGMamba"}):
            other = {r["length"]: r for r in ok if r["channels"] == channels and r["model"] == model}
            common = sorted(set(mamba) & set(other))
            at = length if length in common else (common[-1] if common else None)
            if at is None:
                continue
            a, b = mamba[at], other[at]
            text = f"{channels} ch, {at} samples: {model} takes {b['time_ms'] / a['time_ms']:.2f}x EEGMamba's time"
            if min(a["peak_mem_mib"], b["peak_mem_mib"]) >= 1:
                text += f" and {b['peak_mem_mib'] / a['peak_mem_mib']:.2f}x its memory"
            else:
                text += " (memory below the 1 MiB resolution)"
            lines.append(text)
    return lines


def plot_lines(path: str | Path, rows: Sequence[dict], y: str, ylabel: str, title: str,
               group: Iterable[str] = ("model", "channels")) -> None:
    """One line per group (e.g. model x channels), x = input length; both axes log-scale. Failed cells
    are left out of their line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = tuple(group)
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    keys = list(dict.fromkeys(tuple(r[g] for g in group) for r in rows))
    for key in keys:
        pts = sorted((r["length"], r[y]) for r in rows
                     if tuple(r[g] for g in group) == key and r["status"] == "ok" and r.get(y))
        if not pts:
            continue
        xs, ys = zip(*pts)
        label = f"{key[0]}, {key[1]} ch" if group == ("model", "channels") else ", ".join(map(str, key))
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input length (samples)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
