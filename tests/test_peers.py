"""Peer baselines (MiniRocket, Riemannian tangent space, EEGNet) on the same windows and folds as EEGMamba.

Tests that fit MiniRocket or the Riemannian pipeline skip cleanly without the optional `peers` extra; EEGNet
(test_eegnet.py for the network itself) needs none, so its tests always run. They fit them through
`run_peers_in_child`, as `evaluate --peers` does: importing aeon / numba into the test process would change
the numerics of the torch tests that run after them."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eegmamba_cli.training import peers as peers_module
from eegmamba_cli.training.peer_process import run_peers_in_child
from eegmamba_cli.training.peers import (INSTALL_HINT, LIBRARIES, PEERS, RESULT_COLUMNS, PeersUnavailable,
                                         check_installed, installed_peers, run_peers)

from eegmamba_cli.training.protocols import Protocol, make_folds
from test_eegnet import sine_classes

PEER_LIBRARIES = ("aeon", "pyriemann", "numba")
EXTRA_PEERS = tuple(LIBRARIES)  # the peers of the optional extra


@pytest.fixture
def peers_installed():
    pytest.importorskip("aeon")
    pytest.importorskip("pyriemann")


def trials_table(y: np.ndarray, subject: str = "S001", run="1") -> pd.DataFrame:
    """One window per trial, so each row is its own event."""
    return pd.DataFrame({"subject": subject, "session": "", "run": run, "event": np.arange(len(y)), "label": y})


def covariance_classes(n_per_class=24, n_channels=4, n_samples=256, seed=0):
    """Two classes of white-noise sources, mixed by one fixed matrix, that differ only in which source is
    strong: their spatial covariances differ, their spectra and means do not."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((n_channels, n_channels))
    X, y = [], []
    for label, strong in enumerate((0, 1)):
        gains = np.ones(n_channels)
        gains[strong] = 4.0
        sources = rng.standard_normal((n_per_class, n_channels, n_samples)) * gains[:, None]
        X.append(np.einsum("ij,njt->nit", mixing, sources))
        y += [label] * n_per_class
    return np.concatenate(X).astype(np.float32), np.asarray(y)


def test_peers_separate_spatial_covariance_classes(peers_installed):
    X, y = covariance_classes()
    folds = make_folds(Protocol("within-subject", n_folds=3, seed=0), trials_table(y))
    before = _peer_modules()
    result = run_peers_in_child(X, y, folds, ["a", "b"], seed=0, peers=EXTRA_PEERS)
    assert _peer_modules() == before  # fitted in the child: nothing of theirs loaded here
    assert list(result.columns) == list(RESULT_COLUMNS)
    assert len(result) == len(EXTRA_PEERS) * len(folds)
    assert sorted(map(tuple, result[["peer", "fold"]].to_numpy().tolist())) == sorted(
        (p, f.number) for p in EXTRA_PEERS for f in folds)
    assert (result.n_test == [len(f.test) for f in folds] * len(EXTRA_PEERS)).all()
    assert (result.n_train == [len(f.train) + len(f.val) for f in folds] * len(EXTRA_PEERS)).all()
    assert (result[["fit_seconds", "predict_seconds"]] >= 0).all().all()
    means = result.groupby("peer")[["accuracy", "balanced_accuracy", "cohen_kappa"]].mean()
    assert (means.accuracy >= 0.8).all(), means  # chance is 0.5
    assert (means.cohen_kappa >= 0.6).all(), means


def test_peers_are_reproducible_by_seed(peers_installed):
    X, y = covariance_classes(n_per_class=12, seed=1)
    folds = make_folds(Protocol("within-subject", n_folds=2, seed=0), trials_table(y))
    runs = [run_peers_in_child(X, y, folds, ["a", "b"], seed=3, peers=["minirocket"]) for _ in range(2)]
    assert runs[0].accuracy.tolist() == runs[1].accuracy.tolist()


def _peer_modules() -> set[str]:
    return {m for m in sys.modules if m.split(".")[0] in PEER_LIBRARIES}


def test_missing_extra_names_the_install_command(monkeypatch):
    real = peers_module.importlib.util.find_spec
    monkeypatch.setattr(peers_module.importlib.util, "find_spec", lambda name: None if name == "aeon" else real(name))
    with pytest.raises(PeersUnavailable, match=r'^peer minirocket needs aeon \(aeon is not installed\); '
                                               r'pip install "eegmamba\[peers\]"$'):
        check_installed()


def test_eegnet_needs_no_extra(monkeypatch):
    real = peers_module.importlib.util.find_spec
    monkeypatch.setattr(peers_module.importlib.util, "find_spec",
                        lambda name: None if name in ("aeon", "pyriemann") else real(name))
    check_installed(["eegnet"])
    assert installed_peers() == ("eegnet",)
    assert peers_module.missing_libraries() == {"minirocket": "aeon", "riemann": "pyriemann"}


def test_run_peers_fits_eegnet_here_without_the_extra():
    X, y = sine_classes()
    folds = make_folds(Protocol("within-subject", n_folds=2, seed=0), trials_table(y))
    before = _peer_modules()
    result = run_peers(X, y, folds, ["minus", "plus"], seed=0, peers=("eegnet",), sfreq=128.0)
    assert _peer_modules() == before
    assert result.peer.tolist() == ["eegnet"] * 2 and result.fold.tolist() == [f.number for f in folds]
    assert (result.n_train == [len(f.train) + len(f.val) for f in folds]).all()
    assert (result.accuracy == 1.0).all() and (result.cohen_kappa == 1.0).all(), result


def variance_peer(name, sfreq=None):
    """A stand-in for both peers that needs no extra: log-variance of each channel, logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    if name == "riemann":
        raise PeersUnavailable(f"peer riemann needs pyriemann (pyriemann could not be imported); {INSTALL_HINT}")
    return lambda seed: make_pipeline(FunctionTransformer(lambda X: np.log(X.var(axis=2))),
                                      LogisticRegression(random_state=seed))


@pytest.fixture
def fake_child(tmp_path):
    """A child command that runs peer_process.main with `variance_peer` as the builder and leaves its pid."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from eegmamba_cli.training import peer_process, peers
        from test_peers import variance_peer
        Path({str(tmp_path / "pid")!r}).write_text(str(os.getpid()))
        peers._builder = variance_peer
        sys.exit(peer_process.main())
    """))
    return [sys.executable, str(script)], tmp_path / "pid"


def test_child_process_gives_the_in_process_results(fake_child, monkeypatch):
    command, pid_file = fake_child
    X, y = covariance_classes(n_per_class=12, seed=2)
    folds = make_folds(Protocol("within-subject", n_folds=3, seed=0), trials_table(y))
    child = run_peers_in_child(X, y, folds, ["a", "b"], seed=1, peers=["minirocket"], command=command)
    assert int(pid_file.read_text()) != os.getpid()
    monkeypatch.setattr(peers_module, "_builder", variance_peer)
    here = run_peers(X, y, folds, ["a", "b"], seed=1, peers=["minirocket"])
    assert len(child) == 3 and child.fold.tolist() == [f.number for f in folds]
    assert (child.n_test == [len(f.test) for f in folds]).all()
    pd.testing.assert_frame_equal(child.drop(columns=["fit_seconds", "predict_seconds"]),
                                  here.drop(columns=["fit_seconds", "predict_seconds"]))
    assert child.accuracy.mean() >= 0.8  # the classes differ in channel variance; chance is 0.5
    assert (child[["fit_seconds", "predict_seconds"]] >= 0).all().all()


def test_child_errors_come_back_as_one_line(fake_child):
    command, _ = fake_child
    X, y = covariance_classes(n_per_class=6)
    folds = make_folds(Protocol("within-subject", n_folds=2), trials_table(y))
    with pytest.raises(PeersUnavailable, match=r'^peer riemann needs pyriemann \(pyriemann could not be imported\); '
                                               r'pip install "eegmamba\[peers\]"$'):
        run_peers_in_child(X, y, folds, ["a", "b"], peers=["riemann"], command=command)
    with pytest.raises(ValueError, match=r"^unknown peer\(s\) lda; choose from minirocket, riemann, eegnet$"):
        run_peers_in_child(X, y, folds, ["a", "b"], peers=["lda"])  # the real child


def test_a_crashed_child_is_a_runtime_error():
    X, y = covariance_classes(n_per_class=6)
    folds = make_folds(Protocol("within-subject", n_folds=2), trials_table(y))
    with pytest.raises(RuntimeError, match=r"^the peer process failed \(exit 1\): .*SystemExit|boom"):
        run_peers_in_child(X, y, folds, ["a", "b"], command=[sys.executable, "-c", "raise SystemExit('boom')"])


@pytest.mark.parametrize("change,message", [
    (dict(peers=["lda"]), r"^unknown peer\(s\) lda; choose from minirocket, riemann, eegnet$"),
    (dict(peers=["eegnet"]), r"^peer eegnet needs the windows' sampling rate, got None$"),
    (dict(X=np.zeros((12, 256))), r"^windows must be \(N, channels, samples\) with one label each, got \(12, 256\)"),
    (dict(class_names=["a"]), r"^labels must be class codes 0\.\.0, got values \[0 1\]$"),
    (dict(folds=[]), r"^no folds to fit the peers on$"),
])
def test_bad_input_is_one_line(change, message):
    X, y = covariance_classes(n_per_class=6)
    args = dict(X=X, y=y, folds=make_folds(Protocol("within-subject", n_folds=2), trials_table(y)),
                class_names=["a", "b"]) | change
    with pytest.raises(ValueError, match=message):
        run_peers(args.pop("X"), args.pop("y"), args.pop("folds"), args.pop("class_names"), **args)


def eegmmidb_imagined_left_right(root):
    """S001 runs 4, 8 and 12 (imagined left / right fist): the 0-4 s after each T1 (left) or T2 (right)
    cue, 640 samples at 160 Hz, and the window table for the protocols."""
    mne = pytest.importorskip("mne")
    windows, rows = [], []
    for run in (4, 8, 12):
        raw = mne.io.read_raw_edf(root / f"S001R{run:02d}.edf", preload=True, verbose="error")
        assert raw.info["sfreq"] == 160
        data = raw.get_data()  # (64, n_times)
        for i, (onset, cue) in enumerate(zip(raw.annotations.onset, raw.annotations.description)):
            if cue in ("T1", "T2"):
                start = round(onset * 160)
                windows.append(data[:, start:start + 640])
                rows.append({"subject": "S001", "session": "", "run": str(run), "event": i,
                             "label": {"T1": 0, "T2": 1}[cue]})
    return np.stack(windows).astype(np.float32), pd.DataFrame(rows)


def test_eegmmidb_s001_imagined_left_right_within_subject(realdata, peers_installed):
    X, table = eegmmidb_imagined_left_right(realdata / "eegmmidb" / "S001")
    assert X.shape == (45, 64, 640)
    assert table.label.value_counts().to_dict() == {0: 23, 1: 22}
    assert table.groupby("run").label.sum().to_dict() == {"12": 8, "4": 7, "8": 7}  # right-hand cues per run
    folds = make_folds(Protocol("within-subject", seed=0), table)
    assert [len(f.test) for f in folds] == [9] * 5
    # EEGNet takes tens of seconds a fold here: measured in docs/benchmarks.md, not in the tests
    result = run_peers_in_child(X, table.label.to_numpy(), folds, ["left", "right"], seed=0, peers=EXTRA_PEERS)
    assert len(result) == 2 * 5
    assert (result.n_train == 36).all() and (result.n_test == 9).all()
    # Measured: MiniRocket 0.78, Riemannian 0.73 mean accuracy on raw 0-4 s windows (chance 0.51).
    assert (result.groupby("peer").accuracy.mean() > 0.6).all(), result
