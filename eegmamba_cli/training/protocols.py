"""Evaluation protocols: which windows train, validate and test in each fold.

A protocol is chosen when training starts, not when the cache is built, so one cache serves them all.
`make_folds` reads one row per window and returns, per fold, positional row indices (0..N-1, as
`DataFrame.iloc` takes them) of the training, validation and test parts.

    subject-kfold   the corpus's fixed folds (`fold` column, 0 = never tested) when the table has them,
                    else stratified k-fold grouped by subject
    loso            one fold per subject: that subject is the test part
    cross-session   one fold per session (per run when the table has a single session), or one fold
                    testing the given sessions
    within-subject  stratified k-fold over each subject's events; fold k tests every subject's k-th part
    held-out        one fold testing the given subjects and/or sessions (a competition's train/test)

What never straddles two parts of a fold:
* an event (one trial, or one recording segment): windows cut from it stay together, in every protocol;
* a subject in subject-kfold, loso and held-out by subject;
* a session (or run) in cross-session and held-out by session.
Validation is carved from each training part with the protocol's grouping. When the training part holds
a single group (one subject left to train on, say), or every grouped split would strip a class from
training, it falls back to stratified events, so best-validation selection and early stopping still
have data. Every split is made by a scikit-learn splitter shuffled with the protocol's seed.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

PROTOCOL_NAMES = ("subject-kfold", "loso", "cross-session", "within-subject", "held-out")
DEFAULT_FOLDS = 5
DEFAULT_VAL_FRACTION = 0.2
MAX_VAL_FRACTION = 0.5  # validation is one part of a k-fold split of the training part, so k >= 2
REQUIRED_COLUMNS = ("subject", "event", "label")
OPTIONAL_COLUMNS = ("session", "run")  # absent: the table is one session of one run
_MAX_SEED = 2**32 - 1  # scikit-learn's random_state range


class ProtocolError(ValueError):
    """A protocol argument, or a table, that cannot give sound folds. The message is one line."""


@dataclass(frozen=True)
class Protocol:
    """How to split windows into folds. Construct it directly or with `parse_protocol`."""
    name: str = "subject-kfold"
    n_folds: int | None = None  # None: 5 (or the corpus's fixed folds); loso/cross-session/held-out: derived
    seed: int = 0
    test_subjects: tuple[str, ...] = ()
    test_sessions: tuple[str, ...] = ()  # session labels, or run labels when the table has one session
    val_fraction: float = DEFAULT_VAL_FRACTION  # 0: no validation part

    def __post_init__(self) -> None:
        _check_protocol(self)


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold's row positions, each an ascending int64 array, and what its test part holds out."""
    number: int
    train: np.ndarray  # (n_train,)
    val: np.ndarray  # (n_val,)
    test: np.ndarray  # (n_test,)
    holds_out: dict = field(default_factory=dict)  # {"subjects": [...]}, {"sessions": [...]}, ...
    val_grouping: str = "none"  # the column validation was grouped by: subject, session, run, event, none


# ---------------------------------------------------------------------------------------------- parsing

def parse_protocol(name: str | None = None, *, folds: int | str | None = None, seed: int | str = 0,
                   test_subjects: str | Sequence[str] | None = None,
                   test_sessions: str | Sequence[str] | None = None,
                   val_fraction: float | str = DEFAULT_VAL_FRACTION) -> Protocol:
    """A `Protocol` from command-line-like values: strings are accepted, lists may be comma-separated.

    Without a name, given test subjects or sessions mean `held-out`, otherwise `subject-kfold`."""
    subjects = _names("test subjects", test_subjects)
    sessions = _names("test sessions", test_sessions)
    if name is None or not str(name).strip():
        name = "held-out" if subjects or sessions else "subject-kfold"
    return Protocol(name=str(name).strip().lower().replace("_", "-"),
                    n_folds=None if folds is None or folds == "" else _whole("folds", folds),
                    seed=_whole("seed", seed), test_subjects=subjects, test_sessions=sessions,
                    val_fraction=_fraction(val_fraction))


def _names(what: str, value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip() for v in items)
    if not names or any(not n for n in names):
        raise ProtocolError(f"{what}: empty name in {value!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProtocolError(f"{what}: {', '.join(duplicates)} given twice")
    return names


def _whole(what: str, value: int | str) -> int:
    if isinstance(value, bool):
        raise ProtocolError(f"{what} must be a whole number, got {value!r}")
    try:
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{what} must be a whole number, got {value!r}") from None


def _fraction(value: float | str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"validation fraction must be a number, got {value!r}") from None


def _check_protocol(p: Protocol) -> None:
    """Every check that needs no table; `make_folds` checks the rest against the windows."""
    if p.name not in PROTOCOL_NAMES:
        raise ProtocolError(f"unknown protocol {p.name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")
    if p.n_folds is not None:
        if isinstance(p.n_folds, bool) or not isinstance(p.n_folds, int) or p.n_folds < 2:
            raise ProtocolError(f"folds must be a whole number of at least 2, got {p.n_folds!r}")
        derived = {"loso": "makes one fold per subject",
                   "held-out": "makes one fold, the given test part",
                   "cross-session": ("makes one fold, the given test sessions" if p.test_sessions
                                     else "makes one fold per session")}
        if p.name in derived:
            raise ProtocolError(f"protocol {p.name} {derived[p.name]}, so a number of folds does not apply")
    if isinstance(p.seed, bool) or not isinstance(p.seed, int) or not 0 <= p.seed <= _MAX_SEED:
        raise ProtocolError(f"seed must be a whole number from 0 to {_MAX_SEED}, got {p.seed!r}")
    if not (isinstance(p.val_fraction, (int, float)) and 0 <= p.val_fraction <= MAX_VAL_FRACTION):
        raise ProtocolError(f"validation fraction must be from 0 to {MAX_VAL_FRACTION}, got {p.val_fraction!r}")
    for what, names in (("test subjects", p.test_subjects), ("test sessions", p.test_sessions)):
        if not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names):
            raise ProtocolError(f"{what} must be a tuple of non-empty names, got {names!r}")
    if p.test_subjects and p.name != "held-out":
        raise ProtocolError(f"test subjects fix the test part, which protocol {p.name} chooses itself; "
                            "use protocol held-out")
    if p.test_sessions and p.name not in ("held-out", "cross-session"):
        raise ProtocolError(f"test sessions fix the test part, which protocol {p.name} chooses itself; "
                            "use protocol cross-session or held-out")
    if p.name == "held-out" and not (p.test_subjects or p.test_sessions):
        raise ProtocolError("protocol held-out needs test subjects or test sessions")


# ---------------------------------------------------------------------------------------------- the table

@dataclass(frozen=True, eq=False)
class _Windows:
    """The table as splitters want it: one code per row for each grouping, labels as class codes."""
    subject: np.ndarray  # (N,) int64 codes into `subjects`
    subjects: list[str]  # in natural order (S2 before S10)
    unit: np.ndarray  # (N,) int64 codes into `units`: sessions, or runs when the table has one session
    units: list[str]
    unit_name: str  # "session" or "run"
    event: np.ndarray  # (N,) int64: one code per (subject, session, run, event)
    y: np.ndarray  # (N,) int64 class codes
    classes: tuple[str, ...]
    fixed_fold: np.ndarray | None  # (N,) int64, or None when the table has no non-zero fold

    def groups(self, grouping: str) -> np.ndarray:
        return {"subject": self.subject, "session": self.unit, "run": self.unit, "event": self.event}[grouping]

    def subject_names(self, rows: np.ndarray) -> list[str]:
        return [self.subjects[c] for c in np.unique(self.subject[rows])]


def _read_table(table: pd.DataFrame) -> _Windows:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ProtocolError(f"window table lacks column(s) {', '.join(missing)} "
                            f"(it needs {', '.join(REQUIRED_COLUMNS)}; {', '.join(OPTIONAL_COLUMNS)} optional)")
    if len(table) == 0:
        raise ProtocolError("window table is empty")
    for column in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + ("fold",):
        n_missing = int(table[column].isna().sum()) if column in table.columns else 0
        if n_missing:
            raise ProtocolError(f"window table: column {column} has {n_missing} missing value(s)")
    keys = {c: table[c].astype(str).to_numpy() for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in table.columns}
    session = keys.get("session", np.full(len(table), ""))
    run = keys.get("run", np.full(len(table), ""))
    unit_name = "session" if len(np.unique(session)) > 1 else "run"
    event = pd.MultiIndex.from_arrays([keys["subject"], session, run, keys["event"]]).factorize()[0]
    y, classes = pd.factorize(table["label"], sort=True)
    # Splitters sort their groups: integer codes sort ~50x faster than strings on large tables.
    subject, subjects = _natural_codes(keys["subject"])
    unit, units = _natural_codes(session if unit_name == "session" else run)
    return _Windows(subject=subject, subjects=subjects, unit=unit, units=units, unit_name=unit_name,
                    event=event.astype(np.int64), y=y.astype(np.int64), classes=tuple(str(c) for c in classes),
                    fixed_fold=_fixed_folds(table, keys["subject"]))


def _fixed_folds(table: pd.DataFrame, subject: np.ndarray) -> np.ndarray | None:
    if "fold" not in table.columns:
        return None
    try:
        fold = table["fold"].to_numpy().astype(np.float64)
    except (TypeError, ValueError):
        raise ProtocolError("window table: column fold must hold whole numbers") from None
    if np.any(fold != np.round(fold)) or np.any(fold < 0):
        raise ProtocolError("window table: column fold must hold whole numbers from 0 up")
    if not np.any(fold):
        return None
    fold = fold.astype(np.int64)
    per_subject = pd.Series(fold).groupby(subject).unique()
    split = per_subject[per_subject.map(len) > 1]
    if len(split):
        s = split.index[0]
        raise ProtocolError(f"window table: subject {s} is in folds {', '.join(map(str, sorted(split[s])))}; "
                            "a subject belongs to one fold")
    return fold


# ---------------------------------------------------------------------------------------------- folds

@dataclass(frozen=True, eq=False)
class _TestPart:
    number: int
    pool: np.ndarray  # rows that train or validate
    test: np.ndarray
    holds_out: dict


def make_folds(protocol: Protocol, table: pd.DataFrame) -> list[Fold]:
    """The folds of `protocol` over `table` (one row per window; see the module docstring)."""
    w = _read_table(table)
    grouping = _val_grouping(protocol, w)
    folds = []
    for part in _TEST_PARTS[protocol.name](protocol, w):
        _check_training_classes(protocol, w, part)
        train, val, used = _carve_validation(protocol, w, part, grouping)
        folds.append(Fold(part.number, np.sort(train), np.sort(val), np.sort(part.test),
                          part.holds_out, used))
    return folds


def _subject_kfold(p: Protocol, w: _Windows) -> Iterator[_TestPart]:
    everyone = np.arange(len(w.y))
    if w.fixed_fold is not None:
        numbers = sorted(set(w.fixed_fold.tolist()) - {0})
        if p.n_folds is not None and p.n_folds != len(numbers):
            raise ProtocolError(f"subject-kfold: the table fixes {len(numbers)} folds, so {p.n_folds} folds "
                                "does not apply")
        for number in numbers:
            test = np.flatnonzero(w.fixed_fold == number)
            yield _TestPart(number, np.setdiff1d(everyone, test), test,
                            {"subjects": w.subject_names(test)})
        return
    k = p.n_folds or DEFAULT_FOLDS
    if len(w.subjects) < k:
        raise ProtocolError(f"subject-kfold: {k} folds need at least {k} subjects, the table has "
                            f"{len(w.subjects)} ({_listing(w.subjects)}); use fewer folds, loso or within-subject")
    for number, (pool, test) in enumerate(_stratified_group_kfold(k, p.seed, w.y, w.subject), start=1):
        yield _TestPart(number, pool, test, {"subjects": w.subject_names(test)})


def _loso(p: Protocol, w: _Windows) -> Iterator[_TestPart]:
    if len(w.subjects) < 2:
        raise ProtocolError(f"loso needs at least 2 subjects, the table has 1 ({w.subjects[0]}); "
                            "use within-subject or cross-session")
    for number, (pool, test) in enumerate(_split(LeaveOneGroupOut(), w.y, w.subject), start=1):
        yield _TestPart(number, pool, test, {"subjects": w.subject_names(test)})


def _cross_session(p: Protocol, w: _Windows) -> Iterator[_TestPart]:
    if p.test_sessions:
        yield _held_out_part(p, w)
        return
    if len(w.units) < 2:
        raise ProtocolError(f"cross-session needs at least 2 sessions or runs, the table has one session "
                            f"and one run ({w.units[0] or 'unnamed'})")
    for number, (pool, test) in enumerate(_split(LeaveOneGroupOut(), w.y, w.unit), start=1):
        yield _TestPart(number, pool, test, {f"{w.unit_name}s": [w.units[w.unit[test[0]]]]})


def _within_subject(p: Protocol, w: _Windows) -> Iterator[_TestPart]:
    k = p.n_folds or DEFAULT_FOLDS
    tests: list[list[np.ndarray]] = [[] for _ in range(k)]
    for code, subject in enumerate(w.subjects):
        rows = np.flatnonzero(w.subject == code)
        n_events = len(np.unique(w.event[rows]))
        if n_events < k:
            raise ProtocolError(f"within-subject: subject {subject} has {n_events} events, fewer than the "
                                f"{k} folds; use fewer folds")
        for i, (_, test) in enumerate(_stratified_group_kfold(k, p.seed, w.y[rows], w.event[rows])):
            tests[i].append(rows[test])
    everyone = np.arange(len(w.y))
    for number, parts in enumerate(tests, start=1):
        test = np.concatenate(parts)
        per_subject = pd.Series(w.event[test]).groupby(w.subject[test]).nunique()
        yield _TestPart(number, np.setdiff1d(everyone, test), test,
                        {"events_per_subject": {w.subjects[c]: int(n) for c, n in per_subject.items()}})


def _held_out_part(p: Protocol, w: _Windows) -> _TestPart:
    """Test rows match every given list; training rows match none (a row matching only one is unused)."""
    in_test = np.ones(len(w.y), dtype=bool)
    in_pool = np.ones(len(w.y), dtype=bool)
    holds_out = {}
    for wanted, codes, names, what in ((p.test_subjects, w.subject, w.subjects, "subjects"),
                                       (p.test_sessions, w.unit, w.units, f"{w.unit_name}s")):
        if not wanted:
            continue
        absent = _sorted_names(set(wanted) - set(names))
        if absent:
            raise ProtocolError(f"{p.name}: test {what} {', '.join(absent)} not in the table "
                                f"({what}: {_listing(names)})")
        match = np.isin(codes, [names.index(n) for n in wanted])
        in_test &= match
        in_pool &= ~match
        holds_out[what] = _sorted_names(wanted)
    if not in_test.any():
        raise ProtocolError(f"{p.name}: no window is both in test subjects {', '.join(p.test_subjects)} "
                            f"and in test {w.unit_name}s {', '.join(p.test_sessions)}")
    if not in_pool.any():
        raise ProtocolError(f"{p.name}: the test part takes every subject or {w.unit_name}; nothing is left "
                            "to train on")
    return _TestPart(1, np.flatnonzero(in_pool), np.flatnonzero(in_test), holds_out)


def _held_out(p: Protocol, w: _Windows) -> Iterator[_TestPart]:
    yield _held_out_part(p, w)


_TEST_PARTS = {"subject-kfold": _subject_kfold, "loso": _loso, "cross-session": _cross_session,
               "within-subject": _within_subject, "held-out": _held_out}


def _stratified_group_kfold(k: int, seed: int, y: np.ndarray,
                            groups: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions of a k-fold split, stratified by `y`, that never splits a group."""
    ids, group_of_row = np.unique(groups, return_inverse=True)
    group_y = np.zeros(len(ids), dtype=np.int64)
    group_y[group_of_row] = y
    if np.array_equal(group_y[group_of_row], y):
        # Every group holds one class (a trial, typically): stratifying the groups themselves is exact, and
        # StratifiedKFold is vectorised where StratifiedGroupKFold weighs each group in a Python loop, which
        # takes minutes for the tens of thousands of events of a sleep corpus.
        for train, test in _split(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed), group_y):
            yield np.flatnonzero(np.isin(group_of_row, train)), np.flatnonzero(np.isin(group_of_row, test))
    else:
        yield from _split(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed), y, groups)


def _split(splitter, y: np.ndarray, groups: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The splitter's (train, test) positions, lazily: validation usually needs only the first split."""
    n_splits = getattr(splitter, "n_splits", 0)
    if np.unique(y, return_counts=True)[1].max() < n_splits:
        y = np.zeros_like(y)  # no class can reach every part: stratifying is moot, grouping still holds
    splits = splitter.split(np.zeros((len(y), 1)), y, groups)
    while True:
        with warnings.catch_warnings():  # around each step only: a paused generator must not hold the filter
            # "The least populated class in y has only n members": stratification is then approximate, which
            # is fine; the class coverage that matters (every class in training) is checked explicitly.
            warnings.filterwarnings("ignore", message=r"The least populated class", category=UserWarning)
            split = next(splits, None)
        if split is None:
            return
        yield split


def _check_training_classes(p: Protocol, w: _Windows, part: _TestPart) -> None:
    absent = sorted(set(range(len(w.classes))) - set(w.y[part.pool].tolist()))
    if absent:
        names = ", ".join(w.classes[c] for c in absent)
        raise ProtocolError(f"{p.name} fold {part.number} (testing {_holds(part.holds_out)}): class(es) {names} "
                            "absent from the training part")


# ---------------------------------------------------------------------------------------------- validation

def _val_grouping(p: Protocol, w: _Windows) -> str:
    if p.name == "within-subject":
        return "event"
    if p.name == "cross-session" or (p.name == "held-out" and not p.test_subjects):
        return w.unit_name
    return "subject"


def _carve_validation(p: Protocol, w: _Windows, part: _TestPart,
                      grouping: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val, grouping used): one part of a stratified, grouped k-fold split of the training part,
    k ~ 1 / val_fraction, chosen so that training keeps every class."""
    pool = part.pool
    if p.val_fraction == 0:
        return pool, pool[:0], "none"
    for by in dict.fromkeys((grouping, "event")):  # the protocol's grouping, then events
        groups = w.groups(by)[pool]
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            continue
        k = min(max(2, round(1 / p.val_fraction)), n_groups)
        for train, val in _stratified_group_kfold(k, p.seed, w.y[pool], groups):
            if len(np.unique(w.y[pool[train]])) == len(np.unique(w.y[pool])):
                return pool[train], pool[val], by
    n_events = len(np.unique(w.event[pool]))
    raise ProtocolError(f"{p.name} fold {part.number} (testing {_holds(part.holds_out)}): the training part's "
                        f"{n_events} event(s) are too few to carve validation from without losing a class; "
                        "use a validation fraction of 0")


# ---------------------------------------------------------------------------------------------- reporting

def describe(protocol: Protocol, folds: Sequence[Fold]) -> dict:
    """A JSON-ready account of the protocol and each fold, for run.json."""
    return {
        "protocol": protocol.name,
        "folds": len(folds),
        "seed": protocol.seed,
        "val_fraction": protocol.val_fraction,
        "test_subjects": list(protocol.test_subjects),
        "test_sessions": list(protocol.test_sessions),
        "per_fold": [{"fold": f.number, "holds_out": f.holds_out, "validation_grouped_by": f.val_grouping,
                      "windows": {"train": len(f.train), "val": len(f.val), "test": len(f.test)}}
                     for f in folds],
    }


def _natural_codes(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(code per row, names): names in natural order (run 4 before run 12), codes index into them, so a
    splitter that walks sorted groups walks them in that order."""
    codes, uniques = pd.factorize(values)
    names = _sorted_names(uniques.tolist())
    return pd.Index(names).get_indexer(uniques)[codes].astype(np.int64), names


def _sorted_names(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=_natural_key)


def _natural_key(name: str) -> tuple:
    # The name itself breaks ties ("S1" / "S01"), so the order never depends on set iteration order.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", name) if part), name


def _listing(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def _holds(holds_out: dict) -> str:
    what, value = next(iter(holds_out.items()))
    if isinstance(value, dict):
        return f"{sum(value.values())} events"
    return f"{what} {_listing(value)}"
