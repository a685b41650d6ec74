"""`eegmamba datasets`: the corpora the toolkit knows, how to get them, and what is on disk."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..console import console, handle_errors
from ..data.options import option_help
from ..data.registry import data_root, get_corpus, names


def _raw_state(folder: Path) -> str:
    if not folder.is_dir():
        return "no"
    return "yes" if any(p.is_file() for p in folder.rglob("*")) else "empty"


def _cache_state(folder: Path) -> str:
    info = folder / "info.json"
    if not info.is_file():
        return "partial" if (folder / "parts").is_dir() else "no"
    try:
        return f"{int(json.loads(info.read_text())['n_windows']):,}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"


def dataset_rows(root: Path) -> list[dict]:
    """One row per registry corpus; a corpus whose reader is missing gets a row saying so."""
    rows = []
    for name in names():
        row = {"name": name, "raw": _raw_state(root / "raw" / name),
               "cache": _cache_state(root / "cache" / name)}
        try:
            corpus = get_corpus(name)
        except Exception:  # another engineer's reader not merged yet, or broken: never crash the table
            rows.append({**row, "title": "reader not installed", "task": "", "channels": None,
                         "sfreq": None, "window_s": None, "window_samples": None, "classes": [],
                         "access": "", "url": "", "licence": "", "download": None, "options": []})
            continue
        info = corpus.info
        rows.append({**row, "title": info.title, "task": info.task, "channels": len(info.channels),
                     "sfreq": info.native_sfreq, "window_s": info.window_s,
                     "window_samples": info.window_samples, "classes": list(info.class_names),
                     "access": info.access, "url": info.url, "licence": info.licence,
                     "download": info.download.url if info.download else None,
                     "options": [{"key": k, "default": d, "help": h} for k, d, h in option_help(corpus.Options)]})
    return rows


@handle_errors
def main(
    root: Annotated[Path | None, typer.Option(
        help="Data root: raw files in ROOT/raw/<name>/, caches in ROOT/cache/<name>/ "
             "(default: $EEGMAMBA_DATA, else ./eegmamba-data)")] = None,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="Print the rows as JSON on stdout.")] = False,
    options: Annotated[bool, typer.Option("--options/--no-options",
                                          help="Also list each corpus's `--option KEY=VALUE` settings.")] = False,
) -> None:
    """List the corpora: task, channels, rate, window, classes, access, options, and what is on disk."""
    root = data_root(root)
    rows = dataset_rows(root)
    if as_json:
        typer.echo(json.dumps({"root": str(root), "datasets": rows}, indent=2))
        return
    table = Table(title=f"EEG corpora (data root {root}; cache = finished windows)", title_justify="left")
    for col in ("name", "task", "ch", "rate", "window", "classes", "access", "raw", "cache"):
        table.add_column(col, no_wrap=col in ("name", "rate", "window", "raw"))
    sources = []
    for r in rows:
        if r["channels"] is None:
            table.add_row(r["name"], "", "", "", "", r["title"], "", r["raw"], r["cache"])
            continue
        if r["task"] == "custom":  # channels, window and classes come from its options
            table.add_row(r["name"], "custom", "any", "any", "--window", "--labels", r["access"], r["raw"],
                          r["cache"])
            continue
        rate = f"{r['sfreq']:g} Hz" if r["sfreq"] else "any"
        table.add_row(r["name"], r["task"], str(r["channels"]), rate,
                      f"{r['window_s']:g} s", "/".join(r["classes"]), r["access"], r["raw"], r["cache"])
        how = "  (`eegmamba download`)" if r["download"] else ""
        sources.append(f"  {r['name']:<9} {r['url']}  ({r['licence']}){how}")
    console.print(table)
    console.print("where to get them (raw files go to ROOT/raw/<name>/):", highlight=False)
    for line in sources:
        console.print(line, highlight=False, soft_wrap=True)
    if options:
        console.print("options (`eegmamba preprocess NAME --option KEY=VALUE`):", highlight=False)
        for r in rows:
            for o in r["options"]:
                console.print(f"  {r['name']:<9} {o['key']}={o['default']}  {o['help']}", highlight=False,
                              soft_wrap=True)
