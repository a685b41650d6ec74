"""`eegmamba preprocess NAME`: raw corpus -> 200 Hz windows in the cache (see data/pipeline.py)."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..console import UserError, console, handle_errors
from ..data.pipeline import PreprocessReport, preprocess_corpus
from ..data.registry import canonical_name, data_root


class Normalize(str, Enum):
    zscore = "zscore"
    none = "none"


class BadChannels(str, Enum):
    skip = "skip"
    keep = "keep"


def split_list(values: list[str] | None) -> list[str]:
    """`--x a --x b,c` -> [a, b, c]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_option(text: str) -> tuple[str, object]:
    """`key=value`; true/false, integers and decimals become bool/int/float."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--option {text!r}: expected KEY=VALUE")
    value = value.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@handle_errors
def main(
    name: Annotated[str, typer.Argument(help="siena, chbmit, sleepedf, shhs, deap, seed, shu, bciiv2a or custom.")],
    root: Annotated[Path | None, typer.Option(
        help="Data root (default: $EEGMAMBA_DATA, else ./eegmamba-data).")] = None,
    raw: Annotated[Path | None, typer.Option(help="Raw corpus folder (default: ROOT/raw/NAME).")] = None,
    out: Annotated[Path | None, typer.Option(help="Cache root; the cache goes to OUT/NAME (default: ROOT/cache).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (each holds one recording in memory).")] = default_workers(),
    subjects: Annotated[list[str] | None, typer.Option(help="Only these subjects (repeat or comma-separate).")] = None,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", help="Stop at the first unusable recording.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Delete the existing cache first.")] = False,
    normalize: Annotated[Normalize, typer.Option(help="Per-window, per-channel z-score, or none.")] = Normalize.zscore,
    bad_channels: Annotated[BadChannels, typer.Option(
        help="NaN or flat channel: skip the recording, or keep it (NaN -> 0).")] = BadChannels.skip,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Corpus option KEY=VALUE, e.g. files=all (chbmit), trim_wake=false (sleepedf).")] = None,
    window: Annotated[float | None, typer.Option(help="custom: window length in seconds [default 4].")] = None,
    stride: Annotated[float | None, typer.Option(help="custom: window stride in seconds (default: the window).")] = None,
    channels: Annotated[str | None, typer.Option(help="custom: channels a,b,c (default: EEG channels of the first file).")] = None,
    labels: Annotated[str | None, typer.Option(help="custom: trial_type names, class 0 first: left,right.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Filter (0.1-50 Hz), resample to 200 Hz, cut labelled windows and write the cache."""
    key = canonical_name(name)
    base = data_root(root)
    options = dict(parse_option(o) for o in option or [])
    custom = {"window": window, "stride": stride, "channels": channels, "labels": labels}
    given = {k: v for k, v in custom.items() if v is not None}
    if given and key != "custom":
        raise UserError(f"--{'/--'.join(given)} apply to the custom corpus only; "
                        f"use --option KEY=VALUE for {key}")
    options.update(given)
    report = preprocess_corpus(
        key, raw or base / "raw" / key, out or base / "cache", workers=workers,
        subjects=set(split_list(subjects)) or None, strict=strict, overwrite=overwrite, options=options,
        normalize=normalize.value, bad_channels=bad_channels.value, progress=progress)
    print_summary(report)


def print_summary(report: PreprocessReport) -> None:
    cache = report.cache
    manifest = cache.manifest
    names = cache.class_names
    console.print(f"[bold]{cache.name}[/]: {len(manifest):,} windows, "
                  f"{manifest['recording'].nunique()} recordings, {manifest['subject'].nunique()} subjects "
                  f"-> {report.cache_dir}  (processed {len(report.processed)}, already done {report.reused}, "
                  f"skipped {len(report.skipped)})", highlight=False, soft_wrap=True)
    classes = Table(title="windows per class", title_justify="left")
    classes.add_column("class")
    classes.add_column("windows", justify="right")
    counts = manifest["label"].value_counts()
    for i, cname in enumerate(names):
        classes.add_row(f"{i} {cname}", f"{int(counts.get(i, 0)):,}")
    console.print(classes)
    folds = Table(title="folds", title_justify="left")
    for col in ("fold", "subjects", "windows"):
        folds.add_column(col, justify="right" if col == "windows" else "left")
    for fold, group in manifest.groupby("fold"):
        subjects = sorted(group["subject"].unique())
        shown = ", ".join(subjects[:8]) + (f" … (+{len(subjects) - 8})" if len(subjects) > 8 else "")
        folds.add_row(str(fold) if fold else "0 (none)", shown, f"{len(group):,}")
    console.print(folds)
    if report.skipped:
        skipped = Table(title=f"skipped recordings ({len(report.skipped)})", title_justify="left")
        skipped.add_column("recording")
        skipped.add_column("reason", overflow="fold")
        for s in report.skipped:
            skipped.add_row(s["recording"], s["reason"])
        console.print(skipped)
