"""Option types shared by several commands, and the library's setting names worded as flags."""
from __future__ import annotations

import contextlib
import string
from enum import Enum
from typing import Iterator

from ..console import UserError
from ..errors import ConfigError
from ..precision import PRECISIONS
from ..training.run_folder import SELECTIONS


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose values are `values` (the library's tuple stays the one list of choices)."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


# The paper's ablations; models.ABLATIONS is the list (importing it here would load torch at start-up, so
# tests/test_run_folder.py checks that the two agree).
Ablation = _choices("Ablation", ("unidirectional", "no-moe", "vanilla-moe", "no-task-gate", "no-universal"))
Select = _choices("Select", SELECTIONS)  # train: which checkpoint stands for a fold
EvalSelect = _choices("EvalSelect", ("run", *SELECTIONS))  # evaluate: "run" keeps the run's own choice
Precision = _choices("Precision", PRECISIONS)  # fp32 | bf16 | auto
PRECISION_HELP = ("fp32, or bf16 autocast (fp32 weights, the scan and losses in fp32); auto: bf16 on CUDA and on "
                  "CPUs with native bf16 units (AVX512-BF16, AMX), fp32 elsewhere.")


def flag(setting: str) -> str:
    """The command-line flag of a library setting: max_windows_per_dataset -> --max-windows-per-dataset."""
    return "--" + setting.replace("_", "-")


@contextlib.contextmanager
def settings_as_flags(**special: str) -> Iterator[None]:
    """Reword a ConfigError raised inside with the flags the user typed (`special`: settings whose flag
    is not `flag(setting)`, e.g. ablations="--ablation")."""
    try:
        yield
    except ConfigError as err:
        names = {"resume=False": "--no-resume", **special}
        words = {**{k: flag(k) for k in _placeholders(err.template)}, **names}
        raise UserError(err.in_terms(words)) from None


def _placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]
