"""Corpus options: parsed once, from `KEY=VALUE` text or Python values, into the corpus's `Options`.

Every corpus declares its options as a frozen dataclass (`Corpus.Options`): the field type says how a value
is read, the default is what a run uses when the key is not given, and `metadata["help"]` is the line the
CLI prints. Unknown keys are refused with one line listing the known ones; a value that does not read as
its field's type is refused naming the key. The dataclass's own `__post_init__` checks ranges and choices.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping

from .base import Corpus, CorpusError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def option_fields(options_type: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(options_type))


def option_help(options_type: type) -> list[tuple[str, str, str]]:
    """(key, default as text, help) for each option of a corpus."""
    return [(f.name, _shown(f.default), f.metadata.get("help", "")) for f in option_fields(options_type)]


def parse_options(corpus: Corpus, given: Mapping[str, object] | None = None):
    """`corpus.Options` from `given` (values as text or already typed); the defaults fill the rest."""
    given = dict(given or {})
    types = typing.get_type_hints(corpus.Options)
    known = {f.name for f in option_fields(corpus.Options)}
    unknown = sorted(set(given) - known)
    name = corpus.info.name
    if unknown:
        raise CorpusError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known)) or 'none'}")
    values = {key: _coerce(name, key, value, types[key]) for key, value in given.items()}
    return corpus.Options(**values)


def options_record(options) -> dict:
    """The options as a plain dict (what the cache fingerprint and info.json record)."""
    return dataclasses.asdict(options)


def _coerce(corpus: str, key: str, value, kind):
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
    text = str(value).strip()
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
    elif kind in (int, float) and not isinstance(value, bool):
        number = _number(value, kind)
        if isinstance(number, float) and not math.isfinite(number):
            raise CorpusError(f"{corpus}: option {key}={text} must be a finite number")
        if number is not None:
            return number
    elif kind is str:
        return text
    raise CorpusError(f"{corpus}: option {key}={text} should be {_article(kind)}")


def _number(value, kind):
    """`value` as an int or float, or None; 2.5 is not an int."""
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    if kind is int and isinstance(value, float) and value != number:
        return None
    return number


def _article(kind) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(kind, kind.__name__)


def _shown(default) -> str:
    if default is dataclasses.MISSING:
        return "required"
    if isinstance(default, bool):
        return str(default).lower()
    return "none" if default is None else f"{default}"
