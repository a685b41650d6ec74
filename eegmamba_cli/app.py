"""The `eegmamba` command-line application (Typer)."""
from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from . import __version__
from .commands import benchmark, datasets, demo, download, evaluate, export, predict, preprocess, train


def _no_value_shown(param):
    """Typer's rich help prints each option's value type after it, and `<bool>` after a flag too
    (`--help <bool>`), as if flags took a value. An empty metavar makes that column blank for flags."""
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""
    return param


class _FlagsWithoutType:
    """Mixed into the root group and every command: flags show no value type. Done where help reads the
    parameters, because typer appends --install-completion/--show-completion after construction and
    creates --help on demand."""

    def get_params(self, ctx: typer.Context) -> list:
        return [_no_value_shown(param) for param in super().get_params(ctx)]


class Group(_FlagsWithoutType, TyperGroup):
    pass


class Command(_FlagsWithoutType, TyperCommand):
    pass


app = typer.Typer(
    name="eegmamba",
    cls=Group,
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


app.command("benchmark", cls=Command)(benchmark.main)
app.command("datasets", cls=Command)(datasets.main)
app.command("download", cls=Command)(download.main)
app.command("preprocess", cls=Command)(preprocess.main)
app.command("train", cls=Command)(train.main)
app.command("evaluate", cls=Command)(evaluate.main)
app.command("predict", cls=Command)(predict.main)
app.command("export", cls=Command)(export.main)
app.command("demo", cls=Command)(demo.main)


def main() -> None:
    app()
