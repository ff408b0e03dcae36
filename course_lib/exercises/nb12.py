"""Notebook 12's exercises: Toolformer's weighted loss L_i and its filter criterion."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib import toolformer
from course_lib.check import Verdict, case, check, mistake

# ====================================================================== 1: the weighted loss


def _unnormalised(token_log_probs, start):
    span = token_log_probs[start : start + 5]
    raw = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2])[: len(span)]
    return -(raw * span).sum()


def _one_late(token_log_probs, start):
    return toolformer.weighted_nll(token_log_probs, start + 1)


def _plain_mean(token_log_probs, start):
    return -token_log_probs[start : start + 5].mean()


def weighted_loss(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(token_log_probs (n,), start) -> L_i, against toolformer.weighted_nll."""
    g = torch.Generator().manual_seed(12)

    def lp(n: int) -> torch.Tensor:
        return -torch.rand(n, generator=g) * 3  # log-probabilities: negative

    return check(
        fn,
        reference=toolformer.weighted_nll,
        cases=[
            case(lp(12), 3, label="12 tokens, the call before token 3"),
            case(lp(8), 0, label="the call before the first token"),
            case(lp(7), 4, label="only three tokens left after the call"),
        ],
        mistakes=[
            mistake(
                "weights not normalised",
                "divide 1, 0.8, 0.6, 0.4, 0.2 by their sum (3): the weights sum to 1, so L_i is "
                "a weighted average in nats (unnormalised, tau_f silently means a third of itself)",
                _unnormalised,
            ),
            mistake(
                "the window one token late",
                "the first weight, 1/3 of the total, belongs to x_i itself: the token the call "
                "is inserted before, token_log_probs[start]",
                _one_late,
            ),
            mistake(
                "a plain mean",
                "weight the tokens 1, 0.8, 0.6, 0.4, 0.2 (then normalise): the nearest tokens "
                "count most, so a call is rewarded for helping right where it stands",
                _plain_mean,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== 2: the filter criterion


def _keep(l_empty, l_no_result, l_plus, tau_f):
    return toolformer.filter_score(l_empty, l_no_result, l_plus) >= tau_f


def _empty_only(l_empty, l_no_result, l_plus, tau_f):
    return l_empty - l_plus >= tau_f


def _no_result_only(l_empty, l_no_result, l_plus, tau_f):
    return l_no_result - l_plus >= tau_f


def _reversed(l_empty, l_no_result, l_plus, tau_f):
    return l_plus - min(l_empty, l_no_result) >= tau_f


def keep_call(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(l_empty, l_no_result, l_plus, tau_f) -> bool, against
    filter_score(l_empty, l_no_result, l_plus) >= tau_f."""
    return check(
        fn,
        reference=_keep,
        cases=[
            case(3.0, 2.9, 0.5, 1.0, label="the call and its result help"),
            case(3.0, 0.4, 0.3, 1.0, label="the call alone helps as much"),
            case(0.6, 3.0, 0.5, 1.0, label="the text is easy without any call"),
            case(2.0, 2.5, 1.2, 1.0, label="a small gain, under tau_f"),
            case(1.0, 1.2, 3.5, 1.0, label="the result makes it worse"),
            case(2.0, 2.0, 1.0, 1.0, label="exactly tau_f"),
        ],
        mistakes=[
            mistake(
                "compared with no call only",
                "L- is the smaller of L(nothing) and L(call without result): a call whose "
                "text alone already helps is not credited to its result",
                _empty_only,
            ),
            mistake(
                "compared with the call without its result only",
                "L- also includes L(nothing): when the text is easy without any call, the call "
                "must beat that",
                _no_result_only,
            ),
            mistake(
                "the sign reversed",
                "a useful call lowers the loss: L- - L+ is positive when it helps",
                _reversed,
            ),
        ],
        quiet=quiet,
    )
