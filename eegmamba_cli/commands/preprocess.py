"""`eegmamba preprocess NAME`: raw corpus -> 200 Hz windows in the cache (see data/pipeline.py)."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..console import UserError, console, handle_errors
from ..data.base import CorpusError, OptionError
from ..data.cache import CacheMismatch
from ..data.options import parse_options
from ..data.pipeline import (PreprocessReport, RawFolderMissing, StoppedStrict, check_normalize, parse_band,
                             preprocess_corpus)
from ..data.registry import canonical_name, data_root, get_corpus, registered

# The custom corpus's options also have flags of their own.
CUSTOM_FLAGS = {key: f"--{key}" for key in ("window", "stride", "channels", "labels", "include", "exclude")}


class BadChannels(str, Enum):
    skip = "skip"
    keep = "keep"


def split_list(values: list[str] | None) -> list[str]:
    """`--x a --x b,c` -> [a, b, c]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_option(text: str) -> tuple[str, str]:
    """`key=value` -> (key, value as text); the corpus's Options decide the value's type."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--option {text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def corpus_options(key: str, texts: list[str], extra: dict | None = None):
    """The corpus's typed Options from `--option KEY=VALUE` texts (and flag values), worded for the CLI."""
    given = dict(parse_option(t) for t in texts)
    given.update(extra or {})
    try:
        return parse_options(get_corpus(key), given)
    except OptionError as err:
        raise UserError(cli_wording(key, err)) from None


def cli_wording(key: str, err: OptionError) -> str:
    """The library names options; on the command line the custom corpus's have flags of their own."""
    flag = CUSTOM_FLAGS.get(err.key) if key == "custom" else None
    return str(err).replace(f"option {err.key}", flag) if flag else str(err)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@handle_errors
def main(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(registered())}.")],
    root: Annotated[Path | None, typer.Option(
        help="Data root (default: $EEGMAMBA_DATA, else ./eegmamba-data).")] = None,
    raw: Annotated[Path | None, typer.Option(help="Raw corpus folder (default: ROOT/raw/NAME).")] = None,
    out: Annotated[Path | None, typer.Option(help="Cache root; the cache goes to OUT/NAME (default: ROOT/cache).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (each holds one recording in memory).")] = default_workers(),
    subjects: Annotated[list[str] | None, typer.Option(help="Only these subjects (repeat or comma-separate).")] = None,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", help="Stop at the first unusable recording.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Delete the existing cache first.")] = False,
    normalize: Annotated[str | None, typer.Option(
        help="window: z-score each window and channel; recording: per channel, median and IQR of the whole "
             "recording (keeps slow shifts and relative amplitudes); none. [default: window; recording for "
             "custom]", show_default=False)] = None,
    band: Annotated[str | None, typer.Option(
        help="Band-pass LOW,HIGH in Hz (e.g. 8,30; 0,30 = low-pass), or none. [default: 0.1,50]",
        show_default=False)] = None,
    bad_channels: Annotated[BadChannels, typer.Option(
        help="NaN or flat channel: skip the recording, or keep it (NaN -> 0).")] = BadChannels.skip,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Corpus option KEY=VALUE, e.g. files=all (chbmit), trim_wake=false (sleepedf); "
                               "`eegmamba datasets --options` lists them.")] = None,
    window: Annotated[str | None, typer.Option(
        help="custom: window length in seconds, or event (one window per event, of its own length) [default 4].")] = None,
    stride: Annotated[float | None, typer.Option(help="custom: window stride in seconds (default: the window).")] = None,
    channels: Annotated[str | None, typer.Option(help="custom: channels a,b,c (default: EEG channels of the first file).")] = None,
    labels: Annotated[str | None, typer.Option(
        help="custom: classes, class 0 first: left,right (trial_type names) or left=T1,right=T2+T3 (event codes).")] = None,
    include: Annotated[str | None, typer.Option(
        help="custom: only files matching these glob patterns, relative to --raw: '*R04.edf,*R08.edf'.")] = None,
    exclude: Annotated[str | None, typer.Option(help="custom: skip files matching these glob patterns.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Filter (0.1-50 Hz), resample to 200 Hz, cut labelled windows, normalise them and write the cache."""
    key = canonical_name(name)
    base = data_root(root)
    custom = {"window": window, "stride": stride, "channels": channels, "labels": labels, "include": include,
              "exclude": exclude}
    given = {k: v for k, v in custom.items() if v is not None}
    if given and key != "custom":
        raise UserError(f"--{'/--'.join(given)} apply to the custom corpus only; "
                        f"use --option KEY=VALUE for {key}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    options = corpus_options(key, option or [], given)
    try:
        passband = parse_band(band) if band is not None else "default"
        normalize = check_normalize(normalize) if normalize is not None else None
    except CorpusError as err:
        raise UserError(f"--{err}") from None
    try:
        report = preprocess_corpus(
            key, raw or base / "raw" / key, out or base / "cache", workers=workers,
            subjects=set(split_list(subjects)) or None, strict=strict, overwrite=overwrite, options=options,
            normalize=normalize, band=passband, bad_channels=bad_channels.value,
            progress=progress)
    except RawFolderMissing as err:
        raise UserError(f"{err.raw}: raw folder not found; run `eegmamba download {err.info.name}` or pass --raw "
                        f"(expected layout: {err.info.raw_hint or 'see docs/datasets.md'})") from None
    except StoppedStrict as err:
        raise UserError(f"{err} (stopped: --strict)") from None
    except CacheMismatch as err:
        raise UserError(f"{err.directory}: holds a cache made with other preprocessing parameters; pass "
                        "--overwrite to replace it or choose another --out") from None
    except OptionError as err:  # raised while binding (the custom corpus's labels and channels)
        raise UserError(cli_wording(key, err)) from None
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
