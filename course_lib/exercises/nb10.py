"""Notebook 10's exercises: macro F1 from a confusion matrix, and last-token pooling."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib import finetune, metrics
from course_lib.check import Verdict, case, check, mistake


def _labels(g: torch.Generator, n: int, c: int, skew: float = 0.0) -> tuple:
    y_true = torch.cat([torch.arange(c), torch.randint(c, (n - c,), generator=g)])  # every class
    y_pred = torch.where(
        torch.rand(n, generator=g) < 0.5 + skew, y_true, torch.randint(c, (n,), generator=g)
    )
    return y_true, y_pred


def _f1_of_means(y_true, y_pred, num_classes):
    p, r, _ = metrics.precision_recall_f1(y_true, y_pred, num_classes, average="macro")
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def macro_f1(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(y_true (N,), y_pred (N,), num_classes) -> float, against metrics.macro_f1."""
    g = torch.Generator().manual_seed(10)
    imbalanced = torch.tensor([0] * 12 + [1] * 3 + [2] * 2)
    return check(
        fn,
        reference=metrics.macro_f1,
        cases=[
            case(*_labels(g, 30, 3), 3, label="30 labels, 3 classes"),
            case(imbalanced, torch.zeros(17, dtype=torch.long), 3, label="always the majority"),
            case(
                imbalanced,
                torch.tensor([0] * 10 + [1, 1] + [1, 2, 2] + [0, 2]),
                3,
                label="an imbalanced set",
            ),  # fmt: skip
            case(*_labels(g, 50, 5, skew=0.3), 5, label="50 labels, 5 classes"),
            case(torch.tensor([1, 0]), torch.tensor([1, 0]), 2, label="two right answers"),
        ],
        mistakes=[
            mistake(
                "accuracy (the micro average)",
                "summing tp over the classes before dividing gives accuracy: compute F1 per class "
                "from its own row and column of the confusion matrix, then take the plain mean",
                lambda yt, yp, c: metrics.accuracy(yt, yp, c),
            ),
            mistake(
                "the F1 of the mean precision and the mean recall",
                "average the per-class F1 scores, not precision and recall first",
                _f1_of_means,
            ),
            mistake(
                "the support-weighted mean",
                "macro gives every class the same weight, whatever its support",
                lambda yt, yp, c: metrics.precision_recall_f1(yt, yp, c, average="weighted")[2],
            ),
        ],
        quiet=quiet,
    )


def last_token_pool(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(hidden (B, T, D), mask (B, T)) -> (B, D), against finetune.pool(..., "last")."""
    g = torch.Generator().manual_seed(11)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    return check(
        fn,
        reference=lambda h, m: finetune.pool(h, m, "last"),
        cases=[
            case(torch.randn(3, 5, 4, generator=g), mask, label="(3, 5, 4), right padding"),
            case(
                torch.randn(2, 3, 2, generator=g),
                torch.ones(2, 3, dtype=torch.long),
                label="no padding",
            ),  # fmt: skip
            case(
                torch.randn(1, 6, 3, generator=g),
                torch.tensor([[1, 1, 1, 1, 0, 0]]),
                label="batch of one",
            ),  # fmt: skip
        ],
        mistakes=[
            mistake(
                "the last column, padding included",
                "hidden[:, -1] is a padding position for every text shorter than the batch: "
                "index each row at its own length - 1",
                lambda h, m: h[:, -1],
            ),
            mistake(
                "the mean over the real positions",
                "that is mean pooling; last-token pooling keeps only the final real position",
                lambda h, m: finetune.pool(h, m, "mean"),
            ),
            mistake(
                "the first position",
                "for a causal model position 0 has read one token only: take the last real one",
                lambda h, m: h[:, 0],
            ),
        ],
        quiet=quiet,
    )
