"""Rows (lists of dicts) as CSV files, written atomically; shared by training metrics and benchmarks."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from .fileio import atomic_write_text


def columns_of(rows: Sequence[dict], first: Sequence[str] = ()) -> list[str]:
    """`first` (those present), then every other key in order of appearance."""
    seen = [c for c in first if any(c in r for r in rows)]
    for row in rows:
        seen.extend(k for k in row if k not in seen)
    return seen


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """One row per dict; None becomes an empty cell."""
    columns = list(columns) if columns else columns_of(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    atomic_write_text(path, buf.getvalue())
