"""Console output and user-facing errors.

rich output goes to stderr so that machine-readable output on stdout stays parseable. A problem with the
user's input is a `UserError`: commands print it as one line and exit non-zero, never with a traceback.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# Piped or captured output (CI logs, `| tee`) has no terminal width; rich would wrap tables at 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160)

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """Bad input (a file, an option, a corpus): the message names the file and the problem."""

    exit_code = 1


def fail(message: str, code: int = 1) -> None:
    # The message is text, not markup: `pip install "eegmamba[peers]"` or a path with brackets stays whole.
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Decorate a command: a UserError (or an OSError, or running out of memory) becomes one red line
    and exit code 1; Ctrl-C becomes "interrupted" and exit code 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            fail(str(err), err.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as err:  # the environment, not a bug: full disk, permissions, a vanished file
            where = f"{err.filename}: " if err.filename else ""
            fail(f"{where}{err.strerror or err}")
        except MemoryError:
            fail("out of memory")

    return wrapper  # type: ignore[return-value]
