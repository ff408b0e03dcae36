"""course_lib.metrics against PyTorch and scikit-learn, on awkward inputs and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import metrics as M


def _lm(shape, v, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, v, generator=g) * 3, torch.randint(0, v, shape, generator=g)


@pytest.mark.parametrize(
    "shape, v", [((1,), 1), ((1, 1), 5), ((7,), 3), ((3, 11), 17), ((2, 5), 2)]
)
def test_perplexity_and_cross_entropy_equal_torch(shape, v):
    logits, targets = _lm(shape, v)
    ref = F.cross_entropy(logits.reshape(-1, v).double(), targets.reshape(-1)).item()
    assert math.isclose(M.cross_entropy(logits, targets), ref, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(M.perplexity(logits, targets), math.exp(ref), rel_tol=1e-12)


def test_perplexity_of_uniform_logits_is_the_vocabulary_size():
    assert math.isclose(M.perplexity(torch.zeros(9, 37), torch.arange(9)), 37.0, rel_tol=1e-12)
    assert math.isclose(M.perplexity_from_loss(0.42), 1.5220, rel_tol=1e-4)


def test_ignore_index_matches_torch_and_accuracy():
    logits, targets = _lm((4, 6), 10, seed=3)
    targets[0, :3] = -100
    ref = F.cross_entropy(logits.reshape(-1, 10).double(), targets.reshape(-1), ignore_index=-100)
    assert math.isclose(
        M.cross_entropy(logits, targets, ignore_index=-100), ref.item(), rel_tol=1e-12
    )
    keep = targets != -100
    acc = (logits.argmax(-1)[keep] == targets[keep]).double().mean().item()
    assert M.next_token_accuracy(logits, targets, ignore_index=-100) == pytest.approx(
        acc, abs=1e-15
    )


def test_next_token_accuracy_by_hand():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # ties: lowest id
    assert M.next_token_accuracy(logits, torch.tensor([1, 2, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: M.perplexity(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)),
            ValueError,
            "shape",
        ),
        (
            lambda: M.perplexity(
                torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, dtype=torch.long)
            ),
            TypeError,
            "logits",
        ),
        (lambda: M.perplexity(torch.zeros(3, 4), torch.zeros(3)), TypeError, "targets"),
        (
            lambda: M.perplexity(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
            ValueError,
            "no position",
        ),
        (lambda: M.perplexity(torch.zeros(2, 4), torch.tensor([0, 4])), ValueError, "[0, 4)"),
        (
            lambda: M.next_token_accuracy(
                torch.zeros(2, 4), torch.tensor([-1, -1]), ignore_index=-1
            ),
            ValueError,
            "no position",
        ),
        (lambda: M.perplexity_from_loss(-1.0), ValueError, "loss"),
        (lambda: M.accuracy([0, 1], [0], 2), ValueError, "equally long"),
        (lambda: M.accuracy([], [], 2), ValueError, "empty"),
        (lambda: M.accuracy([0, 2], [0, 1], 2), ValueError, "y_true must lie"),
        (
            lambda: M.confusion_matrix([0, 1], [0, 1], 0),
            ValueError,
            "num_classes must be a positive",
        ),
        (
            lambda: M.confusion_matrix([0, 1], [0, 1], 2.0),
            TypeError,
            "num_classes must be an integer",
        ),
        (lambda: M.accuracy([0, 1], [0, 1], "2"), TypeError, "num_classes must be an integer"),
        (lambda: M.confusion_matrix([0.0, 1.0], [0, 1], 2), TypeError, "integer"),
        (lambda: M.precision_recall_f1([0, 1], [0, 1], 2, average="binary"), ValueError, "average"),
    ],
)
def test_bad_input_is_named(call, exc, words):
    with pytest.raises(exc, match=None) as info:
        call()
    assert words in str(info.value)


labels = st.integers(min_value=1, max_value=5).flatmap(
    lambda c: st.tuples(
        st.just(c),
        st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=1, max_size=40),
    )
)


@pytest.fixture(scope="module")
def skm():
    """scikit-learn's metrics, the reference (declared in the test extra)."""
    from sklearn import metrics as sklearn_metrics

    return sklearn_metrics


def _close(a, b):
    np.testing.assert_allclose(
        np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12
    )  # NaN == NaN here (equal_nan), for zero_division=nan


@pytest.mark.filterwarnings("ignore:A single label was found")
@given(labels)
def test_classification_metrics_equal_sklearn(skm, data):
    c, pairs = data
    y_true = [a for a, _ in pairs]
    y_pred = [b for _, b in pairs]
    lab = list(range(c))
    present = sorted(set(y_true) | set(y_pred))  # sklearn's default labels
    assert M.accuracy(y_true, y_pred, c) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, c).numpy(),
        skm.confusion_matrix(y_true, y_pred, labels=lab),
    )
    for zero_division in (0.0, 1.0, math.nan):
        for average in ("macro", "micro", "weighted"):
            ours = M.precision_recall_f1(
                y_true, y_pred, c, average=average, zero_division=zero_division
            )
            ref = skm.precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=zero_division
            )[:3]  # sklearn's defaults otherwise: labels = the classes that occur
            _close(ours, ref)
            f1 = skm.f1_score(y_true, y_pred, average=average, zero_division=zero_division)
            _close(ours[2], f1)
        ours = M.precision_recall_f1(y_true, y_pred, c, average=None, zero_division=zero_division)
        every = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=lab, average=None, zero_division=zero_division
        )[:3]
        occurring = skm.precision_recall_fscore_support(
            y_true, y_pred, average=None, zero_division=zero_division
        )[:3]
        for a, b, b_present in zip(ours, every, occurring, strict=True):
            assert a.shape == (c,)
            _close(a, b)  # per class: all C classes, as sklearn with labels=range(C)
            _close(a[present], b_present)


def test_a_perfect_prediction_with_an_absent_class_scores_one(skm):
    y = [0, 1, 1, 0, 1]  # class 2 of 3 never occurs, in y_true or y_pred
    assert M.precision_recall_f1(y, y, 3) == (1.0, 1.0, 1.0)
    assert skm.f1_score(y, y, average="macro") == 1.0
    for average in ("micro", "weighted"):
        assert M.precision_recall_f1(y, y, 3, average=average) == (1.0, 1.0, 1.0)
    p, r, f1 = M.precision_recall_f1(y, y, 3, average=None)  # the absent class: 0/0 -> 0
    assert p.tolist() == r.tolist() == f1.tolist() == [1.0, 1.0, 0.0]
    p, r, f1 = M.precision_recall_f1(y, y, 3, average=None, zero_division=1.0)
    assert p.tolist() == r.tolist() == f1.tolist() == [1.0, 1.0, 1.0]


def test_zero_division_counts_only_where_a_ratio_is_0_over_0():
    # class 1 is predicted but never true: recall 0/0; class 2 is true but never predicted:
    # precision 0/0; every other ratio is defined and zero_division leaves it alone
    y_true, y_pred = [0, 0, 2], [0, 1, 0]
    for zd in (0.0, 1.0):
        p, r, f1 = M.precision_recall_f1(y_true, y_pred, 3, average=None, zero_division=zd)
        assert p.tolist() == [0.5, 0.0, zd]
        assert r.tolist() == [0.5, zd, 0.0]
        assert f1.tolist() == [0.5, 0.0, 0.0]  # 2 tp / (2 tp + fp + fn): defined for both
    p, _, _ = M.precision_recall_f1(y_true, y_pred, 3, average="macro", zero_division=math.nan)
    assert p == 0.25  # NaN entries are left out of the mean, as in sklearn


@pytest.mark.parametrize(
    "zero_division, exc, words",
    [
        ("0", TypeError, "zero_division must be 0.0, 1.0 or nan, got str '0'"),
        (True, TypeError, "zero_division must be 0.0, 1.0 or nan, got bool True"),
        (0.5, ValueError, "zero_division must be 0.0, 1.0 or nan, got 0.5"),
        ("warn", TypeError, "got str 'warn'"),
    ],
)
def test_zero_division_bad_input_is_named(zero_division, exc, words):
    with pytest.raises(exc) as info:
        M.precision_recall_f1([0, 1], [0, 1], 2, zero_division=zero_division)
    assert words in str(info.value)


def test_classification_metrics_accept_tensors_of_batch_one():
    t = torch.tensor([2])
    assert M.accuracy(t, t, 3) == 1.0
    assert M.confusion_matrix(t, t, 3).tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    p, r, f1 = M.precision_recall_f1(t, t, 3, average=None)
    assert (
        p.tolist() == [0.0, 0.0, 1.0]
        and r.tolist() == [0.0, 0.0, 1.0]
        and f1.tolist() == [0.0, 0.0, 1.0]
    )


# --------------------------------------------------------------------------- macro F1, bootstrap


@pytest.mark.filterwarnings("ignore:A single label was found")
@given(labels)
def test_macro_f1_equals_sklearn(skm, data):
    c, pairs = data
    y_true, y_pred = [a for a, _ in pairs], [b for _, b in pairs]
    _close(M.macro_f1(y_true, y_pred, c), skm.f1_score(y_true, y_pred, average="macro"))


def test_bootstrap_interval_resamples_whole_groups():
    # group "a" all right, group "b" all wrong: a resample scores k/2 for k draws of "a"
    y_true = [0, 1, 0, 1, 0, 1]
    y_pred = [0, 1, 0, 0, 1, 0]
    groups = ["a", "a", "a", "b", "b", "b"]
    score, low, high = M.bootstrap_interval(y_true, y_pred, groups, 2, n_boot=400, seed=1)
    assert score == 0.5 and low == 0.0 and high == 1.0
    again = M.bootstrap_interval(y_true, y_pred, groups, 2, n_boot=400, seed=1)
    assert again == (score, low, high)  # seeded: the same interval
    one = M.bootstrap_interval(y_true, y_pred, ["p"] * 6, 2, n_boot=50)
    assert one == (0.5, 0.5, 0.5)  # one group: nothing to resample
    f1 = M.bootstrap_interval(y_true, y_pred, groups, 2, metric="macro_f1", n_boot=50)
    assert f1[0] == M.macro_f1(y_true, y_pred, 2) and f1[1] <= f1[0] <= f1[2]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: M.bootstrap_interval([], [], [], 2), ValueError, "empty"),
        (lambda: M.bootstrap_interval([0, 1], [0], ["a", "b"], 2), ValueError, "equally long"),
        (lambda: M.bootstrap_interval([0, 1], [0, 1], ["a"], 2), ValueError, "one group per"),
        (lambda: M.bootstrap_interval([0, 3], [0, 1], ["a", "b"], 2), ValueError, "y_true must"),
        (lambda: M.bootstrap_interval([0], [0], ["a"], 2, metric="f1"), ValueError, "metric"),
        (lambda: M.bootstrap_interval([0], [0], ["a"], 2, level=1.0), ValueError, "level"),
        (lambda: M.bootstrap_interval([0], [0], ["a"], 2, n_boot=0), ValueError, "n_boot"),
        (lambda: M.macro_f1([0.0], [0.0], 2), TypeError, "integer class labels"),
    ],
)
def test_bootstrap_bad_input_is_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --------------------------------------------------------------------------- notebook 10's exercise


def test_exercise_macro_f1_wrong_answers_are_named():
    from course_lib.exercises import nb10

    def confusion(y_true, y_pred, c):
        return torch.bincount(y_true * c + y_pred, minlength=c * c).reshape(c, c).double()

    def right(y_true, y_pred, num_classes):
        cm = confusion(y_true, y_pred, num_classes)
        tp = cm.diagonal()
        predicted, support = cm.sum(dim=0), cm.sum(dim=1)
        f1 = torch.zeros(num_classes, dtype=torch.float64)
        for c in range(num_classes):
            if predicted[c] + support[c] > 0:
                f1[c] = 2 * tp[c] / (predicted[c] + support[c])
        occurs = (predicted + support) > 0
        return float(f1[occurs].mean())

    def micro(y_true, y_pred, num_classes):
        cm = confusion(y_true, y_pred, num_classes)
        return float(cm.diagonal().sum() / cm.sum())

    def f1_of_means(y_true, y_pred, num_classes):
        cm = confusion(y_true, y_pred, num_classes)
        tp = cm.diagonal()
        p = (tp / cm.sum(dim=0).clamp(min=1)).mean()
        r = (tp / cm.sum(dim=1).clamp(min=1)).mean()
        return float(2 * p * r / (p + r))

    def weighted(y_true, y_pred, num_classes):
        cm = confusion(y_true, y_pred, num_classes)
        support = cm.sum(dim=1)
        f1 = 2 * cm.diagonal() / (cm.sum(dim=0) + support).clamp(min=1)
        return float((f1 * support).sum() / support.sum())

    ok, m, f, w = (
        nb10.macro_f1(fn, quiet=True).message for fn in (right, micro, f1_of_means, weighted)
    )
    assert ok == "right: all 5 cases pass. Well done!"
    assert "hint: this looks like accuracy (the micro average)" in m
    assert "hint: this looks like the F1 of the mean precision and the mean recall" in f
    assert "hint: this looks like the support-weighted mean" in w
