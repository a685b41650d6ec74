"""The `eegmamba` command-line application (Typer)."""
from __future__ import annotations

import typer

from . import __version__
from .commands import benchmark, datasets, demo, download, evaluate, predict, preprocess, train

app = typer.Typer(
    name="eegmamba",
    help="EEGMamba: one model for seizure detection, sleep staging, emotion recognition and motor imagery.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"eegmamba {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """EEGMamba toolkit."""


app.command("benchmark")(benchmark.main)
app.command("datasets")(datasets.main)
app.command("download")(download.main)
app.command("preprocess")(preprocess.main)
app.command("train")(train.main)
app.command("evaluate")(evaluate.main)
app.command("predict")(predict.main)
app.command("demo")(demo.main)


def main() -> None:
    app()
