"""Channel names: the one normalisation and the one 10-20 alias table, for the corpus readers and predict.

Recordings spell the same electrode many ways: `EEG Fp1`, `FP1`, `Fp1.` (BCI2000 pads names with dots to
four characters), `EEG-Fz` (BCI IV 2a), and the old 10-20 names T3/T4/T5/T6 for today's T7/T8/P7/P8 (Siena
writes T3, CHB-MIT T7). `normalise_label` reduces every spelling to one form, so two labels name the same
channel exactly when their normal forms are equal, whichever side uses the old names.

    normalise_label("EEG Fp1 - T3")  -> "FP1-T7"
    match_channels(labels, wanted, source="a.edf") -> indices into labels, in the order wanted

`match_channels` is the strict matcher of the corpus readers (every wanted name present, duplicates kept
apart). Prediction builds its more forgiving matcher (reference suffixes, bipolar derivations, a
user's channel map) on the same `normalise_label` and `positions` (eegmamba_cli/predict/channels.py).
"""
from __future__ import annotations

import re
from typing import Sequence

from .data.base import RecordingError

# Old 10-20 name -> new name. The normal form uses the new names, so the table works in both directions:
# a wanted T3 finds a file's T7 and a wanted T7 finds a file's T3.
RENAMED_10_20 = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

_PREFIX = re.compile(r"^EEG[\s_-]+(?=\S)", re.IGNORECASE)  # `EEG Fp1`, `EEG-Fz`, `EEG_C3`; not a bare `EEG`


def electrode(name: str) -> str:
    """One electrode name in upper case, new 10-20 spelling: `t3` -> `T7`."""
    name = name.upper()
    return RENAMED_10_20.get(name, name)


def spelling(label: str) -> str:
    """A label without what only dresses it: an `EEG` prefix, spaces, BCI2000's trailing dots, case."""
    text = _PREFIX.sub("", label.strip())
    return re.sub(r"\s+", "", text).rstrip(".").upper()


def normalise_label(label: str) -> str:
    """A label reduced to what identifies it: `EEG Fp1 - T3` -> `FP1-T7`, `EEG-Fz` -> `FZ`, `Cz..` -> `CZ`.

    The `spelling`, with old 10-20 electrodes renamed in every part of a derivation.
    """
    return "-".join(electrode(part) for part in spelling(label).split("-"))


def positions(labels: Sequence[str]) -> dict[str, list[int]]:
    """Normal form -> the indices of the labels that have it, in file order (repeated labels kept)."""
    out: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(normalise_label(label), []).append(i)
    return out


def match_channels(labels: Sequence[str], wanted: Sequence[str], *, source: str) -> list[int]:
    """Indices of the `wanted` channels in `labels`; one RecordingError listing every missing one.

    A name wanted k times takes its k-th occurrence in the file (CHB-MIT's two `T8-P8`), so a file with
    fewer copies than wanted is missing some.
    """
    found = positions(labels)
    used: dict[str, int] = {}
    out, missing = [], []
    for want in wanted:
        name = normalise_label(want)
        k = used.get(name, 0)
        used[name] = k + 1
        copies = found.get(name, [])
        if k < len(copies):
            out.append(copies[k])
        else:
            missing.append(want)
    if missing:
        raise RecordingError(f"{source}: missing {len(missing)} of {len(wanted)} channels "
                             f"({', '.join(missing)})")
    return out
