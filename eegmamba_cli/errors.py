"""Errors about settings, worded in the terms of whoever set them.

The library names its settings as it knows them (`epochs`, `val_fraction`); a command line knows them as
flags (`--epochs`, `--val-fraction`). A `ConfigError` keeps its message as a template with the settings
in braces, so the library's callers read "epochs must be at least 1 (got 0)" and the CLI rewords the
same error as "--epochs must be at least 1 (got 0)" without a second copy of the rule.
"""
from __future__ import annotations

from typing import Mapping

from .console import UserError

_NOTHING = object()


class _Names(dict):
    def __missing__(self, key: str) -> str:
        return key  # a setting the caller has no other name for keeps its own


class ConfigError(UserError):
    """A setting out of range or in conflict with another. `template` names settings as {name} (or a
    setting with its value, as {resume=False}); `got` is the offending value, appended as "(got ...)"."""

    def __init__(self, template: str, got=_NOTHING):
        self.template = template + ("" if got is _NOTHING else f" (got {literal(got)})")
        super().__init__(self.in_terms({}))

    def in_terms(self, names: Mapping[str, str]) -> str:
        """The message with each {setting} replaced by names[setting] (itself where `names` has none)."""
        return self.template.format_map(_Names(names))


def literal(value) -> str:
    """`value` as text to put into a template as it is (its braces are not setting names)."""
    return str(value).replace("{", "{{").replace("}", "}}")
