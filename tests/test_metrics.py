"""course_lib.metrics against PyTorch and scikit-learn, on awkward inputs and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

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
        (lambda: M.confusion_matrix([0, 1], [0, 1], 0), ValueError, "num_classes"),
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


@pytest.mark.filterwarnings("ignore:A single label was found")
@given(labels)
def test_classification_metrics_equal_sklearn(data):
    c, pairs = data
    y_true = [a for a, _ in pairs]
    y_pred = [b for _, b in pairs]
    lab = list(range(c))
    assert M.accuracy(y_true, y_pred, c) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, c).numpy(),
        skm.confusion_matrix(y_true, y_pred, labels=lab),
    )
    for average in ("macro", "micro", "weighted", None):
        ours = M.precision_recall_f1(y_true, y_pred, c, average=average)
        ref = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=lab, average=average, zero_division=0
        )[:3]
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(
                np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12
            )


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
