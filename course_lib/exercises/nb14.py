"""Notebook 14's exercises: a canary's exposure, per-example clipping, and the server's step of
federated averaging."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib import privacy
from course_lib.check import Verdict, case, check, mistake

# ====================================================================== 1: exposure


def _exposure(secret_nll, candidates_nll):
    return privacy.exposure(float(secret_nll), candidates_nll)


def _rank_from_zero(secret_nll, candidates_nll):
    rank = int((candidates_nll < secret_nll).sum())
    return rank, math.log2(len(candidates_nll) + 1) - math.log2(max(rank, 1))


def _higher_is_better(secret_nll, candidates_nll):
    rank = 1 + int((candidates_nll > secret_nll).sum())
    return rank, math.log2(len(candidates_nll) + 1) - math.log2(rank)


def _natural_log(secret_nll, candidates_nll):
    rank = 1 + int((candidates_nll < secret_nll).sum())
    return rank, math.log(len(candidates_nll) + 1) - math.log(rank)


def _without_the_secret(secret_nll, candidates_nll):
    rank = 1 + int((candidates_nll < secret_nll).sum())
    return rank, math.log2(len(candidates_nll)) - math.log2(rank)


def exposure(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(secret_nll float, candidates_nll (N,)) -> (rank, exposure in bits), against
    privacy.exposure."""
    g = torch.Generator().manual_seed(14)
    nll = torch.rand(999, generator=g) * 10 + 20
    return check(
        fn,
        reference=_exposure,
        cases=[
            case(5.0, nll, label="a memorised secret, likelier than every candidate"),
            case(25.0, nll, label="a secret in the middle of the candidates"),
            case(31.0, nll, label="a secret less likely than every candidate"),
            case(2.5, torch.tensor([1.0, 2.0, 3.0]), label="three candidates"),
        ],
        mistakes=[
            mistake(
                "a rank that starts at 0",
                "the rank of the likeliest sequence is 1: count the candidates with a lower "
                "NLL and add 1 (log2 of 0 is minus infinity)",
                _rank_from_zero,
            ),
            mistake(
                "higher NLL counted as likelier",
                "NLL is minus the log-probability: the likelier candidates are those with a "
                "LOWER NLL than the secret",
                _higher_is_better,
            ),
            mistake(
                "natural logarithms",
                "exposure is counted in bits: math.log2, not math.log",
                _natural_log,
            ),
            mistake(
                "the secret left out of the space",
                "the ranked space holds the N candidates and the secret: log2(N + 1)",
                _without_the_secret,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== 2: clipping


def _clip(grads, max_norm):
    return privacy.clip_per_example({"g": grads}, max_norm)[0]["g"]


def _batch_clip(grads, max_norm):
    return grads * min(1.0, max_norm / grads.norm().item())


def _to_norm(grads, max_norm):
    return grads * (max_norm / grads.norm(dim=1, keepdim=True))


def _by_value(grads, max_norm):
    return grads.clamp(-max_norm, max_norm)


def clip(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(grads (B, P): one row per example, max_norm C) -> (B, P), each row scaled by
    min(1, C / its norm), against privacy.clip_per_example."""
    g = torch.Generator().manual_seed(15)
    mixed = torch.randn(5, 7, generator=g) * torch.tensor([0.01, 0.1, 1.0, 10.0, 3.0])[:, None]
    return check(
        fn,
        reference=_clip,
        cases=[
            case(mixed, 1.0, label="rows above and below the norm"),
            case(torch.randn(3, 4, generator=g) * 5, 2.5, label="every row above C = 2.5"),
            case(torch.randn(1, 10, generator=g) * 0.01, 1.0, label="one small row"),
        ],
        mistakes=[
            mistake(
                "the batch clipped as a whole",
                "clip each example on its own: the norm of each row (norm(dim=1)), so that no "
                "single example can move the model by more than C",
                _batch_clip,
            ),
            mistake(
                "every row scaled to norm C",
                "clipping only shrinks: the factor is min(1, C / norm), so a row already "
                "shorter than C stays as it is",
                _to_norm,
            ),
            mistake(
                "clipped value by value",
                "clamp bounds each coordinate, not the row's length: scale the whole row by "
                "one factor, which keeps its direction",
                _by_value,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== 3: the server's average


def _average(weights, sizes):
    states = [{"w": w} for w in weights]
    return privacy.average_states(states, [float(s) for s in sizes])["w"]


def _plain_mean(weights, sizes):
    return weights.mean(0)


def _not_normalised(weights, sizes):
    return (weights * sizes[:, None]).sum(0)


def _inverse(weights, sizes):
    w = 1.0 / sizes
    return (weights * w[:, None]).sum(0) / w.sum()


def average(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(weights (K, P): each client's flattened weights, sizes (K,): their numbers of
    examples) -> (P,), the average weighted by size, against privacy.average_states."""
    g = torch.Generator().manual_seed(16)
    return check(
        fn,
        reference=_average,
        cases=[
            case(
                torch.randn(3, 5, generator=g),
                torch.tensor([10.0, 30.0, 60.0]),
                label="three clients of 10, 30 and 60 examples",
            ),
            case(torch.randn(2, 4, generator=g), torch.tensor([1.0, 1.0]), label="equal sizes"),
            case(torch.randn(1, 6, generator=g), torch.tensor([7.0]), label="one client"),
        ],
        mistakes=[
            mistake(
                "a plain mean",
                "a client with more examples counts for more: weight each client's weights by "
                "its size, then divide by the total size",
                _plain_mean,
            ),
            mistake(
                "not divided by the total",
                "the weights of the average must sum to 1: divide by sizes.sum()",
                _not_normalised,
            ),
            mistake(
                "weighted by 1 / size",
                "weight by the size itself: FedAvg's average is the one that training on "
                "all the examples together would give in a single step",
                _inverse,
            ),
        ],
        quiet=quiet,
    )
