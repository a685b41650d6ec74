"""Metrics against values computed by hand; undefined metrics are NaN with a warning."""
import math

import numpy as np
import pytest

from eegmamba_cli.training.metrics import METRICS, MissingClassWarning, classification_metrics, mean_std


def _onehot_proba(pred, k, hi=0.6):
    p = np.full((len(pred), k), (1 - hi) / (k - 1))
    p[np.arange(len(pred)), pred] = hi
    return p


def test_three_class_toy_by_hand():
    y = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    pred = [0, 1, 1, 1, 0, 2, 2, 2, 1, 2]
    # confusion (rows true): [1 1 0] [1 2 0] [0 1 4]
    # per-class F1: 0: P=1/2 R=1/2 -> 1/2; 1: P=2/4 R=2/3 -> 4/7; 2: P=4/4 R=4/5 -> 8/9
    m = classification_metrics(y, _onehot_proba(pred, 3))
    assert list(m)[:3] == ["accuracy", "auroc", "f1_weighted"] and set(m) == set(METRICS)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["f1_weighted"] == pytest.approx((2 * 1 / 2 + 3 * 4 / 7 + 5 * 8 / 9) / 10)
    assert m["f1_macro"] == pytest.approx((1 / 2 + 4 / 7 + 8 / 9) / 3)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)
    # kappa: p_o = 0.7; p_e = (2·2 + 3·4 + 5·4) / 100 = 0.36 (true rows x predicted columns)
    assert m["cohen_kappa"] == pytest.approx((0.7 - 0.36) / (1 - 0.36))
    assert math.isnan(m["auprc"])  # binary tasks only


def test_multiclass_auroc_is_one_vs_rest_macro():
    proba = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.2, 0.5, 0.3]])
    # class 0: 0.6 vs {0.5, 0.2} -> 1; class 1: 0.2 vs {0.3, 0.5} -> 0; class 2: 0.3 vs {0.1, 0.3} -> 0.75
    assert classification_metrics([0, 1, 2], proba)["auroc"] == pytest.approx((1 + 0 + 0.75) / 3)


def test_binary_auroc_and_auprc_use_the_positive_probability():
    p1 = np.array([0.1, 0.6, 0.4, 0.8])
    m = classification_metrics([0, 0, 1, 1], np.stack([1 - p1, p1], axis=1))
    assert m["auroc"] == pytest.approx(3 / 4)  # 3 of the 4 (positive, negative) pairs ordered right
    assert m["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # precision 1 at recall 1/2, 2/3 at 1


def test_missing_class_gives_nan_and_a_warning_not_a_crash():
    y = [0, 0, 2, 2]
    with pytest.warns(MissingClassWarning, match="N1 absent"):
        m = classification_metrics(y, _onehot_proba([0, 1, 2, 2], 3), ["W", "N1", "N2"], where="fold 1 x")
    assert math.isnan(m["auroc"]) and m["accuracy"] == pytest.approx(0.75)
    with pytest.warns(MissingClassWarning):
        b = classification_metrics([1, 1, 1], _onehot_proba([1, 0, 1], 2))
    assert math.isnan(b["auroc"]) and math.isnan(b["auprc"]) and b["accuracy"] == pytest.approx(2 / 3)
    with pytest.warns(MissingClassWarning, match="no test windows"):
        e = classification_metrics([], np.zeros((0, 2)))
    assert all(math.isnan(v) for v in e.values())


def test_mean_std_uses_ddof_zero_and_skips_nan():
    mean, std, n = mean_std([0.5, 0.7, float("nan")])
    assert (mean, n) == (pytest.approx(0.6), 2) and std == pytest.approx(0.1)  # ddof=1 would be 0.1414
    assert math.isnan(mean_std([float("nan")])[0])
