"""Notebook 02's exercises: sinusoidal positions, a cosine-similarity matrix, the SGNS loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib import embeddings as E
from course_lib.check import Verdict, case, check, mistake


def _pe_exponent_per_column(T: int, dim: int) -> torch.Tensor:
    """w_j = 10000 ** (-2j / dim) for every column j, not per pair."""
    j = torch.arange(dim, dtype=torch.float64)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (-2 * j / dim)
    return torch.where(j % 2 == 0, angles.sin(), angles.cos()).float()


def _pe_sin_cos_swapped(T: int, dim: int) -> torch.Tensor:
    pe = E.sinusoidal_encoding(T, dim, dtype=torch.float64)
    return torch.stack([pe[:, 1::2], pe[:, 0::2]], dim=-1).flatten(1).float()


def _pe_halves(T: int, dim: int) -> torch.Tensor:
    """All sines first, then all cosines."""
    pe = E.sinusoidal_encoding(T, dim)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)


def sinusoidal_encoding(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(num_positions, dim) -> (num_positions, dim) float32, against the library's."""
    return check(
        fn,
        reference=E.sinusoidal_encoding,
        cases=[
            case(1, 2, label="one position"),
            case(4, 8, label="4 positions, dim 8"),
            case(50, 16, label="50 positions, dim 16"),
            case(7, 6, label="odd number of positions"),
        ],
        mistakes=[
            mistake(
                "a frequency per column instead of per pair",
                "columns 2i and 2i+1 share one frequency w_i = 10000 ** (-2i / dim), "
                "with i the pair's index (i = column // 2)",
                _pe_exponent_per_column,
            ),
            mistake(
                "sine and cosine swapped",
                "even columns (0, 2, ...) hold the sine, odd columns the cosine",
                _pe_sin_cos_swapped,
            ),
            mistake(
                "all sines first, then all cosines",
                "some libraries lay it out that way, but this exercise interleaves them: "
                "PE[:, 0::2] = sin, PE[:, 1::2] = cos",
                _pe_halves,
            ),
        ],
        atol=1e-5,  # angles up to 49 radians: float32 arithmetic on them is good to a few 1e-6
        quiet=quiet,
    )


def cosine_similarity_matrix(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(a (n, d), b (m, d)) -> (n, m) cosines, against F.cosine_similarity."""
    g = torch.Generator().manual_seed(5)
    a34, b54 = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    return check(
        fn,
        reference=lambda a, b: F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1),
        cases=[
            case(a34, b54, label="3 and 5 vectors of dim 4"),
            case(torch.tensor([[3.0, 4.0]]), torch.tensor([[6.0, 8.0]]), label="same direction"),
            case(10 * a34, b54[:2] / 10, label="long and short vectors"),
            case(torch.randn(1, 8, generator=g), torch.randn(6, 8, generator=g), label="n = 1"),
            case(torch.zeros(1, 3), torch.ones(2, 3), label="a zero vector"),
        ],
        mistakes=[
            mistake(
                "dot products without dividing by the lengths",
                "divide each row of a and of b by its norm before the product",
                lambda a, b: a @ b.T,
            ),
            mistake(
                "normalising columns instead of rows",
                "each vector is a row: take the norm over dim=1 (the d numbers of one vector)",
                lambda a, b: (
                    (a / a.norm(dim=0, keepdim=True).clamp_min(1e-8))
                    @ (b / b.norm(dim=0, keepdim=True).clamp_min(1e-8)).T
                ),
            ),
            mistake(
                "normalising only a",
                "both vectors' lengths must go: divide the rows of b by their norms too",
                lambda a, b: (a / a.norm(dim=1, keepdim=True).clamp_min(1e-8)) @ b.T,
            ),
        ],
        quiet=quiet,
    )


def _sgns_without_minus(center, context, negatives):
    neg = torch.einsum("bkd,bd->bk", negatives, center)
    return -(F.logsigmoid((center * context).sum(-1)) + F.logsigmoid(neg).sum(-1)).mean()


def _sgns_summed(center, context, negatives):
    return E.sgns_loss(center, context, negatives) * center.shape[0]


def _sgns_log_of_sigmoid(center, context, negatives):
    neg = torch.einsum("bkd,bd->bk", negatives, center)
    pos = (center * context).sum(-1)
    return -(torch.log(torch.sigmoid(pos)) + torch.log(torch.sigmoid(-neg)).sum(-1)).mean()


def sgns_loss(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(center (B, d), context (B, d), negatives (B, K, d)) -> the mean SGNS loss."""
    g = torch.Generator().manual_seed(7)

    def batch(B: int, K: int, d: int, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        return tuple(scale * torch.randn(*s, generator=g) for s in ((B, d), (B, d), (B, K, d)))

    return check(
        fn,
        reference=E.sgns_loss,
        cases=[
            case(*batch(4, 3, 8), label="B = 4, K = 3, d = 8"),
            case(*batch(1, 5, 16), label="batch of one"),
            case(*batch(6, 1, 4), label="one negative"),
            case(*batch(3, 2, 8, scale=10.0), label="large scores"),
        ],
        mistakes=[
            mistake(
                "scoring the negatives without the minus sign",
                "noise words should score LOW: their term is log sigma(-u_k . v_c)",
                _sgns_without_minus,
            ),
            mistake(
                "summing over the batch instead of averaging",
                "divide by the batch size (.mean()), so the loss does not grow with B",
                _sgns_summed,
            ),
            mistake(
                "log(sigmoid(s)), which underflows",
                "sigmoid(-200) is 0 in float32 and log(0) = -inf: use F.logsigmoid",
                _sgns_log_of_sigmoid,
            ),
        ],
        quiet=quiet,
    )
