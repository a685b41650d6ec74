"""Which signal of a user's recording feeds each channel a model head expects.

A head expects canonical names (`Fpz-Cz`, `FP1-F7`, `T3`...). A recording names its channels its own way
(`EEG Fpz-Cz`, `EEG FP1-REF`, `T7`, `EEG-C3`...). Matching goes, for each expected channel, through:

1. the `--channel-map` file, when it names that channel (it always wins);
2. the corpus's own file labels (SHHS calls C4-A1 `EEG`; BCI IV 2a calls FC3 `EEG-0`);
3. the same name after normalising both sides (`normalise_label` in eegmamba_cli/channels.py): case,
   spaces, an `EEG ` / `EEG-` prefix, BCI2000's trailing dots, and the old 10-20 names T3/T4/T5/T6 =
   T7/T8/P7/P8 in every electrode of a derivation;
4. a referential channel of that electrode (`FP1-REF`, `Fp1-LE`, `C3-A2`, `FP1-Ref`...);
5. a bipolar derivation built from two referential channels: `FP1-F7` = FP1 - F7 (CHB-MIT style).

A channel found by none of these is missing: prediction stops with one line saying what the head needs and
what the file has. Nothing is ever zero-filled.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..channels import electrode, normalise_label, positions, spelling
from ..console import UserError

# Suffixes that name a reference, not a second electrode: `FP1-REF`, `C3-LE` (linked ears), `C3-A2`.
REFERENCE_SUFFIXES = ("REF", "LE", "AVG", "AV", "AR", "CAR", "A1", "A2", "M1", "M2", "A1A2")
_REFERENCE = re.compile(r"^([A-Z0-9]+?)[-_]?(?:" + "|".join(sorted(REFERENCE_SUFFIXES, key=len, reverse=True))
                        + r")$")
_DUPLICATE = re.compile(r"^(.*)-\d+$")  # MNE renames repeated labels X -> X-0, X-1


def referential_key(label: str) -> str | None:
    """The electrode of a referential label (`EEG FP1-REF` -> `FP1`), or None if it is not one."""
    text = normalise_label(label)
    if "-" not in text and re.fullmatch(r"[A-Z0-9]+", text):
        return text
    match = _REFERENCE.fullmatch(text)
    return electrode(match.group(1)) if match else None


@dataclass(frozen=True)
class Source:
    """Where one expected channel comes from: file channel `plus`, minus `minus` when bipolar."""

    expected: str
    plus: int  # index into the file's labels
    minus: int | None = None
    how: str = "name"  # name | alias | reference | bipolar | map | corpus label

    def describe(self, labels: Sequence[str]) -> str:
        return labels[self.plus] if self.minus is None else f"{labels[self.plus]} − {labels[self.minus]}"


# --- the --channel-map file ------------------------------------------------------------------------

def read_channel_map(path: Path) -> dict[str, tuple[str, ...]]:
    """expected channel -> (file label,) or (plus label, minus label).

    JSON: {"FP1-F7": "EEG Fp1", "FZ-CZ": ["EEG Fz", "EEG Cz"]} (a two-item list is a difference).
    TSV: `expected<TAB>file label[<TAB>minus label]` per line; `#` comments and an `expected` header skip.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise UserError(f"{path}: cannot read the channel map ({err.strerror or err})") from None
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _json_map(path, text)
    return _tsv_map(path, text)


def _json_map(path: Path, text: str) -> dict[str, tuple[str, ...]]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object {{\"expected name\": \"file channel\"}}")
    out = {}
    for name, value in data.items():
        values = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else ()
        if len(values) not in (1, 2) or not all(isinstance(v, str) and v.strip() for v in values):
            raise UserError(f"{path}: {name!r} must map to a channel name or a list of two names (a − b)")
        out[str(name)] = tuple(v.strip() for v in values)
    return out


def _tsv_map(path: Path, text: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if number == 1 and cells[0].lower() in ("expected", "channel", "model"):
            continue  # a header line
        if len(cells) not in (2, 3) or not all(cells):
            raise UserError(f"{path}:{number}: expected 'expected<TAB>file channel[<TAB>minus channel]'")
        out[cells[0]] = tuple(cells[1:])
    return out


# --- matching ------------------------------------------------------------------------------------

class ChannelMatcher:
    """Finds each expected channel among a file's labels (see the module docstring for the order)."""

    def __init__(self, labels: Sequence[str], corpus_labels: dict[str, str] | None = None,
                 channel_map: dict[str, tuple[str, ...]] | None = None, source: str = "recording"):
        self.labels = list(labels)
        self.source = source
        self.map = {normalise_label(k): v for k, v in (channel_map or {}).items()}
        # corpus file label -> canonical name, both normalised: {"EEG": "C4-A1", "EEG-0": "FC3"}
        self.corpus = {normalise_label(k): normalise_label(v) for k, v in (corpus_labels or {}).items()}
        self.by_name = positions([_undo_duplicate(label, self.labels) for label in self.labels])
        self.by_reference: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            ref = referential_key(label)
            if ref is not None:
                self.by_reference.setdefault(ref, []).append(i)

    def match(self, expected: Sequence[str]) -> list[Source]:
        unknown = [name for name in self.map if name not in {normalise_label(e) for e in expected}]
        if unknown:
            raise UserError(f"channel map: {', '.join(unknown)} not among the channels the model expects "
                            f"({', '.join(expected)})")
        used: dict[str, int] = {}
        found, missing = [], []
        for name in expected:
            k = normalise_label(name)
            occurrence = used.get(k, 0)
            used[k] = occurrence + 1
            source = self._find(name, k, occurrence)
            (found if source else missing).append(source or name)
        if missing:
            raise UserError(f"{self.source}: missing {len(missing)} of {len(expected)} channels the model "
                            f"needs ({', '.join(missing)}); the file has {', '.join(self.labels) or 'none'} "
                            "(name them with --channel-map)")
        return found

    def _find(self, name: str, k: str, occurrence: int) -> Source | None:
        if k in self.map:
            return self._from_map(name, self.map[k])
        native = [i for i, label in enumerate(self.labels) if self.corpus.get(normalise_label(label)) == k]
        if native:
            return Source(name, _nth(native, occurrence), how="corpus label")
        if k in self.by_name:
            index = _nth(self.by_name[k], occurrence)
            label = _undo_duplicate(self.labels[index], self.labels)
            return Source(name, index, how="name" if spelling(name) == spelling(label) else "alias")
        if k in self.by_reference:
            return Source(name, _nth(self.by_reference[k], occurrence), how="reference")
        parts = k.split("-")
        if len(parts) == 2 and all(p in self.by_reference for p in parts):
            return Source(name, self.by_reference[parts[0]][0], self.by_reference[parts[1]][0], how="bipolar")
        return None

    def _from_map(self, name: str, values: tuple[str, ...]) -> Source:
        indices = []
        for value in values:
            hits = [i for i, label in enumerate(self.labels) if label.strip().lower() == value.strip().lower()]
            if not hits:
                raise UserError(f"channel map: {value!r} (for {name}) is not a channel of {self.source}; "
                                f"it has {', '.join(self.labels)}")
            indices.append(hits[0])
        return Source(name, indices[0], indices[1] if len(indices) == 2 else None, how="map")


def _nth(indices: list[int], occurrence: int) -> int:
    """The k-th file channel of a name wanted k times (CHB-MIT's two T8-P8); the last one if fewer."""
    return indices[min(occurrence, len(indices) - 1)]


def _undo_duplicate(label: str, labels: Sequence[str]) -> str:
    """`T8-P8-0` -> `T8-P8` when MNE renamed a repeated label (`T8-P8-1` exists too)."""
    match = _DUPLICATE.fullmatch(label)
    if match and sum(1 for other in labels if _DUPLICATE.fullmatch(other)
                     and _DUPLICATE.fullmatch(other).group(1) == match.group(1)) > 1:
        return match.group(1)
    return label
