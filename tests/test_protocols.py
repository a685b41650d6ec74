"""Evaluation protocols: no leakage between train / validation / test, stratified, reproducible by seed,
and every bad argument refused with one clear line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eegmamba_cli.training.protocols import (Protocol, ProtocolError, describe, make_folds,
                                             parse_protocol)

EVENT_KEY = ["subject", "session", "run", "event"]


def study(n_subjects=2, sessions=("1", "2"), runs=("4", "8", "12"), events_per_run=6, classes=("left", "right"),
          seed=0) -> pd.DataFrame:
    """Subjects x sessions x runs x events, each event cut into 1-3 windows, rows in shuffled order."""
    rng = np.random.default_rng(seed)
    rows = [dict(subject=f"S{s + 1:03d}", session=ses, run=run, event=f"T{e}", label=classes[e % len(classes)])
            for s in range(n_subjects) for ses in sessions for run in runs for e in range(events_per_run)
            for _ in range(rng.integers(1, 4))]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def keys(table: pd.DataFrame, rows: np.ndarray, columns) -> set:
    return set(map(tuple, table.iloc[rows][columns].astype(str).to_numpy().tolist()))


def assert_sound(table: pd.DataFrame, folds, test_grouping: list[str] | None):
    """Parts are disjoint row positions; no event, nor the protocol's group (test vs the rest) nor the
    validation group (train vs val), is on two sides; training keeps every class; validation exists."""
    parts = ("train", "val", "test")
    for fold in folds:
        rows = {p: getattr(fold, p) for p in parts}
        for p, r in rows.items():
            assert r.dtype == np.int64 and np.all(np.diff(r) > 0) and (len(r) == 0 or r.max() < len(table)), p
        assert len(rows["test"]) and len(rows["train"]) and len(rows["val"])
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not set(rows[a]) & set(rows[b])
            assert not keys(table, rows[a], EVENT_KEY) & keys(table, rows[b], EVENT_KEY), (a, b)
        if test_grouping:
            rest = np.concatenate([rows["train"], rows["val"]])
            assert not keys(table, rows["test"], test_grouping) & keys(table, rest, test_grouping)
        by = {"subject": ["subject"], "session": ["session"], "run": ["run"], "event": EVENT_KEY}[fold.val_grouping]
        assert not keys(table, rows["train"], by) & keys(table, rows["val"], by)
        assert set(table.label.iloc[rows["train"]]) == set(table.label)


def assert_each_row_tested_once(table, folds):
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(table)))


SOUND = [  # (protocol, the columns the test part never shares with training, every row tested once?)
    (Protocol("loso"), ["subject"], True),
    (Protocol("subject-kfold", n_folds=2), ["subject"], True),
    (Protocol("cross-session"), ["session"], True),
    (Protocol("cross-session", test_sessions=("2",)), ["session"], False),
    (Protocol("within-subject"), None, True),
    (Protocol("within-subject", n_folds=3, val_fraction=0.5), None, True),
    (Protocol("held-out", test_subjects=("S002",)), ["subject"], False),
    (Protocol("held-out", test_sessions=("1",)), ["session"], False),
    (Protocol("held-out", test_subjects=("S001",), test_sessions=("2",)), ["subject"], False),
]


@pytest.mark.parametrize("protocol,grouping,covers", SOUND, ids=lambda v: repr(v) if isinstance(v, Protocol) else "")
def test_no_leakage(protocol, grouping, covers):
    table = study()
    folds = make_folds(protocol, table)
    assert_sound(table, folds, grouping)
    if covers:
        assert_each_row_tested_once(table, folds)


def test_subject_order_is_natural_and_total():
    table = study(n_subjects=1, sessions=("1",), runs=("1",))
    table = pd.concat([table.assign(subject=s) for s in ("S10", "S2", "S02", "s1")], ignore_index=True)
    folds = make_folds(Protocol("loso"), table)
    assert [f.holds_out["subjects"] for f in folds] == [["S02"], ["S2"], ["S10"], ["s1"]]


def test_held_out_by_subject_and_session_leaves_the_mixed_rows_unused():
    table = study()
    [fold] = make_folds(Protocol("held-out", test_subjects=("S001",), test_sessions=("2",)), table)
    test, rest = table.iloc[fold.test], table.iloc[np.concatenate([fold.train, fold.val])]
    assert set(test.subject) == {"S001"} and set(test.session) == {"2"}
    assert set(rest.subject) == {"S002"} and set(rest.session) == {"1"}
    assert fold.holds_out == {"subjects": ["S001"], "sessions": ["2"]}


def test_cross_session_uses_runs_when_there_is_one_session_in_natural_order():
    table = study(sessions=("1",))
    folds = make_folds(Protocol("cross-session"), table)
    assert [f.holds_out for f in folds] == [{"runs": ["4"]}, {"runs": ["8"]}, {"runs": ["12"]}]
    assert_sound(table, folds, ["run"])
    assert [f.val_grouping for f in folds] == ["run"] * 3  # two training runs: validation takes one
    [fold] = make_folds(Protocol("cross-session", test_sessions=("12",)), table)
    assert set(table.run.iloc[fold.test]) == {"12"}


def test_loso_with_one_training_subject_validates_on_stratified_events():
    table = study()
    for fold in make_folds(Protocol("loso"), table):
        assert fold.val_grouping == "event"
        assert set(table.label.iloc[fold.val]) == {"left", "right"}


def test_subject_kfold_groups_by_subject_and_validates_on_other_subjects():
    table = study(n_subjects=10, sessions=("1",), runs=("1",))
    folds = make_folds(Protocol("subject-kfold"), table)
    assert [f.number for f in folds] == [1, 2, 3, 4, 5]
    assert sorted(len(f.holds_out["subjects"]) for f in folds) == [2, 2, 2, 2, 2]
    assert {f.val_grouping for f in folds} == {"subject"}
    assert_sound(table, folds, ["subject"])
    assert_each_row_tested_once(table, folds)


def test_subject_kfold_follows_the_corpus_fixed_folds():
    table = study(n_subjects=6, sessions=("1",), runs=("1",))
    fixed = {"S001": 1, "S002": 1, "S003": 2, "S004": 3, "S005": 0, "S006": 3}
    table["fold"] = table.subject.map(fixed)
    folds = make_folds(Protocol("subject-kfold"), table)
    assert [(f.number, f.holds_out["subjects"]) for f in folds] == [
        (1, ["S001", "S002"]), (2, ["S003"]), (3, ["S004", "S006"])]
    for fold in folds:
        assert np.array_equal(fold.test, np.flatnonzero(table.fold == fold.number))
    fold0 = set(np.flatnonzero(table.fold == 0))
    assert all(fold0 <= set(f.train) | set(f.val) for f in folds)  # never tested, always in training
    assert_sound(table, folds, ["subject"])
    table["fold"] = 0  # no fixed folds: grouped k-fold
    assert len(make_folds(Protocol("subject-kfold", n_folds=3), table)) == 3


def test_within_subject_test_parts_are_stratified():
    rng = np.random.default_rng(1)
    labels = rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=240)
    table = pd.DataFrame({"subject": np.repeat(["S1", "S2", "S3"], 80), "event": np.arange(240),
                          "label": labels})
    table = table.loc[table.index.repeat(rng.integers(1, 4, size=240))].reset_index(drop=True)
    overall = table.label.value_counts(normalize=True)
    folds = make_folds(Protocol("within-subject", seed=3), table)
    for fold in folds:
        for part in (fold.test, fold.val):
            share = table.label.iloc[part].value_counts(normalize=True).reindex(overall.index, fill_value=0)
            assert np.abs(share - overall).max() < 0.08, (fold.number, share.to_dict())
    assert_sound(table.assign(session="", run=""), folds, None)


def test_same_seed_same_folds_other_seed_other_folds():
    table = study()

    def parts(protocol):
        return [(f.train.tolist(), f.val.tolist(), f.test.tolist()) for f in make_folds(protocol, table)]

    for name in ("within-subject", "loso", "cross-session"):
        assert parts(Protocol(name, seed=7)) == parts(Protocol(name, seed=7))
        assert parts(Protocol(name, seed=7)) != parts(Protocol(name, seed=8))  # validation at least moves
    tests = [[f.test.tolist() for f in make_folds(Protocol("within-subject", seed=s), table)] for s in (0, 1)]
    assert tests[0] != tests[1]


def test_no_validation_when_the_fraction_is_zero():
    table = study()
    folds = make_folds(Protocol("loso", val_fraction=0), table)
    assert all(len(f.val) == 0 and f.val_grouping == "none" for f in folds)
    assert len(folds[0].train) + len(folds[0].test) == len(table)


def eegmmidb_s001_imagined_lr() -> pd.DataFrame:
    """Runs 4, 8 and 12 of EEGMMIDB S001 as cut into one 4 s window per cue: 8 + 8 + 7 = 23 left (T1),
    7 + 7 + 8 = 22 right (T2), cues alternating as they do in the recordings."""
    counts = {"4": (8, 7), "8": (8, 7), "12": (7, 8)}
    rows = []
    for run, (n_left, n_right) in counts.items():
        cues = ["left"] * n_left + ["right"] * n_right
        order = np.argsort(np.r_[np.arange(n_left) * 2, np.arange(n_right) * 2 + 1], kind="stable")
        rows += [dict(subject="S001", session="", run=run, event=f"R{run}-{i}", label=cues[j])
                 for i, j in enumerate(order)]
    return pd.DataFrame(rows)


def test_eegmmidb_s001_within_subject_five_folds_of_nine_trials():
    table = eegmmidb_s001_imagined_lr()
    assert table.label.value_counts().to_dict() == {"left": 23, "right": 22}
    for seed in (0, 1, 2):
        folds = make_folds(Protocol("within-subject", seed=seed), table)
        assert [len(f.test) for f in folds] == [9] * 5
        assert sorted((table.label.iloc[f.test] == "left").sum() for f in folds) == [4, 4, 5, 5, 5]
        assert_sound(table, folds, None)
        assert_each_row_tested_once(table, folds)
        assert [f.holds_out for f in folds] == [{"events_per_subject": {"S001": 9}}] * 5
    assert [f.holds_out for f in make_folds(Protocol("cross-session"), table)] == [
        {"runs": ["4"]}, {"runs": ["8"]}, {"runs": ["12"]}]


def test_describe_is_json_and_names_the_protocol():
    table = study()
    protocol = parse_protocol("loso", seed="3")
    record = json.loads(json.dumps(describe(protocol, make_folds(protocol, table))))
    assert record["protocol"] == "loso" and record["folds"] == 2 and record["seed"] == 3
    assert record["per_fold"][0]["holds_out"] == {"subjects": ["S001"]}
    assert record["per_fold"][0]["validation_grouped_by"] == "event"
    assert sum(record["per_fold"][0]["windows"].values()) == len(table)


def test_parse_protocol_reads_command_line_strings():
    assert parse_protocol() == Protocol("subject-kfold")
    assert parse_protocol(test_subjects="S001, S002") == Protocol("held-out", test_subjects=("S001", "S002"))
    assert parse_protocol(test_sessions=["T"]) == Protocol("held-out", test_sessions=("T",))
    assert parse_protocol("Within_Subject", folds="3", seed="2", val_fraction="0.25") == Protocol(
        "within-subject", n_folds=3, seed=2, val_fraction=0.25)
    assert parse_protocol("cross-session", test_sessions="E") == Protocol("cross-session", test_sessions=("E",))


BAD_ARGUMENTS = [
    (dict(name="kfold"), r"^unknown protocol 'kfold'; choose one of subject-kfold, loso, cross-session, "),
    (dict(folds=1), r"^folds must be a whole number of at least 2, got 1$"),
    (dict(folds="five"), r"^folds must be a whole number, got 'five'$"),
    (dict(name="loso", folds=5), r"^protocol loso makes one fold per subject, so a number of folds"),
    (dict(name="cross-session", folds=3), r"^protocol cross-session makes one fold per session"),
    (dict(seed=-1), r"^seed must be a whole number from 0 to 4294967295, got -1$"),
    (dict(val_fraction=0.7), r"^validation fraction must be from 0 to 0.5, got 0.7$"),
    (dict(val_fraction="a fifth"), r"^validation fraction must be a number, got 'a fifth'$"),
    (dict(name="loso", test_subjects="S001"), r"^test subjects fix the test part, which protocol loso"),
    (dict(name="within-subject", test_sessions="2"), r"^test sessions fix the test part, which protocol within"),
    (dict(name="held-out"), r"^protocol held-out needs test subjects or test sessions$"),
    (dict(test_subjects="S001,,S002"), r"^test subjects: empty name in 'S001,,S002'$"),
    (dict(test_sessions="1,2,1"), r"^test sessions: 1 given twice$"),
]


def test_protocol_built_directly_is_checked_too():
    with pytest.raises(ProtocolError, match=r"^test subjects must be a tuple of non-empty names, got 'S001'$"):
        Protocol("held-out", test_subjects="S001")
    with pytest.raises(ProtocolError, match=r"^folds must be a whole number of at least 2, got True$"):
        Protocol("within-subject", n_folds=True)


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS, ids=[m[:40] for _, m in BAD_ARGUMENTS])
def test_bad_argument_is_one_line(kwargs, message):
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_protocol(**kwargs)
    assert "\n" not in str(caught.value)


def _one_class_per_subject(t):
    return t.assign(label=np.where(t.subject == "S001", "left", "right"))


BAD_TABLES = [  # (protocol, table change, message)
    (Protocol("subject-kfold"), None,
     r"^subject-kfold: 5 folds need at least 5 subjects, the table has 2 \(S001, S002\); use fewer folds"),
    (Protocol("within-subject", n_folds=40), None,
     r"^within-subject: subject S001 has 36 events, fewer than the 40 folds; use fewer folds$"),
    (Protocol("held-out", test_subjects=("S009",)), None,
     r"^held-out: test subjects S009 not in the table \(subjects: S001, S002\)$"),
    (Protocol("cross-session", test_sessions=("3",)), None,
     r"^cross-session: test sessions 3 not in the table \(sessions: 1, 2\)$"),
    (Protocol("loso"), _one_class_per_subject,
     r"^loso fold 1 \(testing subjects S001\): class\(es\) left absent from the training part$"),
    (Protocol("loso"), lambda t: t[t.subject == "S001"], r"^loso needs at least 2 subjects, the table has 1 \(S001\)"),
    (Protocol("cross-session"), lambda t: t[(t.session == "1") & (t.run == "4")],
     r"^cross-session needs at least 2 sessions or runs, the table has one session and one run \(4\)$"),
    (Protocol("held-out", test_subjects=("S001", "S002")), None,
     r"^held-out: the test part takes every subject or session; nothing is left to train on$"),
    (Protocol("loso"), lambda t: t.drop(columns=["event"]),
     r"^window table lacks column\(s\) event \(it needs subject, event, label; session, run optional\)$"),
    (Protocol("loso"), lambda t: t.assign(label=t.label.where(t.index % 10 > 0)),
     r"^window table: column label has \d+ missing value\(s\)$"),
    (Protocol("loso"), lambda t: t.iloc[:0], r"^window table is empty$"),
    (Protocol("subject-kfold"), lambda t: t.assign(fold=np.where(t.session == "1", 1, 2)),
     r"^window table: subject S001 is in folds 1, 2; a subject belongs to one fold$"),
    (Protocol("subject-kfold"), lambda t: t.assign(fold=-1), r"^window table: column fold must hold whole numbers"),
    (Protocol("subject-kfold", n_folds=3), lambda t: t.assign(fold=np.where(t.subject == "S001", 1, 2)),
     r"^subject-kfold: the table fixes 2 folds, so 3 folds does not apply$"),
    (Protocol("held-out", test_subjects=("S001",)),
     lambda t: t[(t.subject == "S001") | ((t.event == "T0") & (t.session == "1") & (t.run == "4"))],
     r"^held-out fold 1 \(testing subjects S001\): class\(es\) right absent from the training part$"),
    (Protocol("held-out", test_subjects=("S001",)),
     lambda t: t[(t.subject == "S001") | ((t.event.isin(["T0", "T1"])) & (t.session == "1") & (t.run == "4"))],
     r"^held-out fold 1 \(testing subjects S001\): the training part's 2 event\(s\) are too few to carve "
     r"validation from without losing a class; use a validation fraction of 0$"),
]


@pytest.mark.parametrize("protocol,change,message", BAD_TABLES, ids=[m[1:40] for *_, m in BAD_TABLES])
def test_bad_table_is_one_line(protocol, change, message):
    table = study()
    table = change(table) if change else table
    with pytest.raises(ProtocolError, match=message) as caught:
        make_folds(protocol, table)
    assert "\n" not in str(caught.value)


@settings(max_examples=15, deadline=None)
@given(n_subjects=st.integers(1, 4), events=st.integers(2, 9), seed=st.integers(0, 2**32 - 1),
       fraction=st.sampled_from([0.1, 0.2, 0.34, 0.5]), name=st.sampled_from(["within-subject", "loso"]))
def test_validation_is_never_empty_with_two_events_per_class(n_subjects, events, seed, fraction, name):
    """Whenever every fold's training part holds at least two events of each class, validation is
    carved (non-empty, leak-free) and training keeps every class."""
    table = study(n_subjects=n_subjects, sessions=("1",), runs=("1",), events_per_run=events, seed=seed % 97)
    n_folds = 2 if name == "within-subject" else None
    try:
        pools = make_folds(Protocol(name, n_folds=n_folds, seed=seed, val_fraction=0), table)
    except ProtocolError:
        assume(False)  # too few subjects or events for the protocol itself
    assume(all(table.iloc[f.train].groupby("label").event.nunique().min() >= 2
               and table.iloc[f.train].label.nunique() == 2 for f in pools))
    folds = make_folds(Protocol(name, n_folds=n_folds, seed=seed, val_fraction=fraction), table)
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in pools]  # validation moves no test row
    assert_sound(table, folds, ["subject"] if name == "loso" else None)
