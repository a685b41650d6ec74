"""`eegmamba download NAME`: fetch an open corpus with checksum verification, or say how to get it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..console import UserError, console, handle_errors
from ..data.download import OfflineError, download_corpus, manual_instructions
from ..data.registry import canonical_name, data_root, downloadable
from .preprocess import corpus_options, split_list


@handle_errors
def main(
    name: Annotated[str, typer.Argument(help="A corpus with an automatic download (`eegmamba datasets` lists "
                                             "them); others: prints how to get them.")],
    root: Annotated[Path | None, typer.Option(
        help="Data root; files go to ROOT/raw/NAME (default: $EEGMAMBA_DATA, else ./eegmamba-data).")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="Mirror with the PhysioNet layout (default: https://physionet.org/files/<slug>/1.0.0/).")] = None,
    subjects: Annotated[list[str] | None, typer.Option(help="Only these subjects (repeat or comma-separate).")] = None,
    offline: Annotated[bool, typer.Option("--offline/--no-offline",
                                          help="Verify local files only; any network access is an error.")] = False,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Corpus option KEY=VALUE, as for preprocess (e.g. files=all for chbmit).")] = None,
    all_files: Annotated[bool, typer.Option("--all-files/--no-all-files",
                                            help="chbmit: the same as --option files=all.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Download an open PhysioNet corpus (Siena, CHB-MIT, Sleep-EDF's SleepEDF-20) into ROOT/raw/NAME."""
    key = canonical_name(name)
    base = data_root(root)
    if key == "custom":
        raise UserError("custom: nothing to download; put your files under a folder and pass --raw")
    if key not in downloadable():
        for line in manual_instructions(key, base):
            console.print(line, highlight=False, soft_wrap=True)
        console.print("nothing downloaded: this corpus needs a manual download", highlight=False)
        return
    given = [*(option or []), *(["files=all"] if all_files else [])]
    if all_files and key != "chbmit":
        raise UserError(f"--all-files applies to chbmit only, not {key}")
    try:
        report = download_corpus(key, base / "raw" / key, base_url=base_url,
                                 subjects=set(split_list(subjects)) or None, offline=offline,
                                 options=corpus_options(key, given), progress=progress)
    except OfflineError as err:
        raise UserError(f"{err.what}, and --offline forbids {err.verb} it") from None
    console.print(f"{key}: {report.selected} files verified in {report.target} "
                  f"({len(report.downloaded)} downloaded, {report.bytes / 1e6:,.1f} MB; "
                  f"{report.present} already present)", highlight=False, soft_wrap=True)
