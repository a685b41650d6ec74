"""`--help` of every command: flags take no value, so none is shown a value type (`--help <bool>`)."""
from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from eegmamba_cli.app import app

COMMANDS = sorted(typer.main.get_command(app).commands)
runner = CliRunner()


def help_text(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_commands_are_found():
    assert {"datasets", "download", "preprocess", "train", "evaluate", "predict", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["(root)", *COMMANDS])
def test_help_shows_no_value_type_after_flags(command):
    text = help_text(*([] if command == "(root)" else [command]))
    assert "--help" in text and "<bool>" not in text


def test_options_that_take_a_value_keep_their_type():
    text = help_text("predict")
    assert "--allow-pickle-checkpoint" in text and "<path>" in text and "<int>" in text
    assert "--install-completion" in help_text() and "--version" in help_text()
