"""Notebook 05's exercises: a stable log-softmax, the cross-entropy gradient, padded perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.check import Verdict, case, check, mistake


def stable_log_softmax(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(z (..., V)) -> (..., V) log-probabilities, against torch.log_softmax."""
    g = torch.Generator().manual_seed(1)
    return check(
        fn,
        reference=lambda z: torch.log_softmax(z, dim=-1),
        cases=[
            case(torch.randn(3, 5, generator=g), label="(3, 5) small logits"),
            case(torch.tensor([[1e4, 0.0, -1e4]]), label="logits of 1e4"),
            case(torch.tensor([0.0, -200.0]), label="a tiny probability"),
            case(torch.randn(2, 4, 7, generator=g) * 20, label="(2, 4, 7) batch"),
            case(torch.randn(4, 1, generator=g), label="one class"),
        ],
        mistakes=[
            mistake(
                "the log of the unshifted softmax",
                "exp(1e4) is inf in float32: subtract the maximum before exp",
                lambda z: torch.log(torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)),
            ),
            mistake(
                "the log of a (shifted) softmax",
                "a probability below 1e-45 rounds to 0 and log(0) = -inf: stay in log space, "
                "(z - m) - log(sum(exp(z - m)))",
                lambda z: torch.log(torch.softmax(z, -1)),
            ),
            mistake(
                "the maximum taken over the wrong axis",
                "reduce over the last axis, dim=-1 with keepdim=True, so each row gets its own "
                "maximum and sum",
                lambda z: (
                    (z - z.amax(0, keepdim=True))
                    - torch.log(torch.exp(z - z.amax(0, keepdim=True)).sum(0, keepdim=True))
                ),
            ),
        ],
        quiet=quiet,
    )


def _autograd_ce_grad(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    z = logits.detach().clone().requires_grad_()
    return torch.autograd.grad(F.cross_entropy(z, target), z)[0]


def ce_grad(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(logits (N, V), target (N,)) -> d mean cross-entropy / d logits (N, V), vs autograd."""
    g = torch.Generator().manual_seed(4)
    return check(
        fn,
        reference=_autograd_ce_grad,
        cases=[
            case(torch.randn(4, 6, generator=g), torch.tensor([0, 5, 2, 2]), label="(4, 6)"),
            case(torch.randn(1, 3, generator=g), torch.tensor([1]), label="one position"),
            case(
                torch.randn(7, 10, generator=g) * 5,
                torch.randint(0, 10, (7,), generator=g),
                label="(7, 10) larger logits",
            ),
            case(torch.tensor([[1e4, 0.0, -1e4]]), torch.tensor([2]), label="logits of 1e4"),
        ],
        mistakes=[
            mistake(
                "the gradient of the sum",
                "F.cross_entropy averages over N: divide by N",
                lambda z, t: torch.softmax(z, -1) - F.one_hot(t, z.shape[1]).to(z.dtype),
            ),
            mistake(
                "the sign flipped",
                "the loss falls when the true logit rises: p - y, not y - p",
                lambda z, t: (
                    (F.one_hot(t, z.shape[1]).to(z.dtype) - torch.softmax(z, -1)) / z.shape[0]
                ),
            ),
            mistake(
                "the one-hot target left out",
                "differentiating -z_t gives -1 at the true class: subtract y",
                lambda z, t: torch.softmax(z, -1) / z.shape[0],
            ),
        ],
        quiet=quiet,
    )


def _padded_batch(lengths: list[int], t: int, v: int, seed: int):
    """Logits (B, T, V) and targets (B, T) with -100 after each sequence's length."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(lengths), t, v, generator=g) * 2  # (B, T, V)
    y = torch.randint(0, v, (len(lengths), t), generator=g)  # (B, T)
    y[torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]] = -100
    return z, y


def _nll_per_position(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, T): -log p of the target, 0 where padded."""
    lp = torch.log_softmax(z, -1).gather(-1, y.clamp(min=0)[..., None])[..., 0]
    return -lp * (y != -100)


def padded_perplexity(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(logits (B, T, V), target (B, T) with -100 at padding) -> perplexity of real tokens."""
    return check(
        fn,
        reference=lambda z, y: math.exp(F.cross_entropy(z.transpose(1, 2), y).item()),
        cases=[
            case(*_padded_batch([5, 2], 5, 7, seed=1), label="lengths 5 and 2"),
            case(*_padded_batch([4], 4, 3, seed=2), label="one sequence, no padding"),
            case(*_padded_batch([1, 6, 3], 6, 11, seed=3), label="lengths 1, 6 and 3"),
        ],
        mistakes=[
            mistake(
                "padding counted in the mean",
                "divide by the number of real tokens, not by B * T: padding is not text",
                lambda z, y: math.exp(_nll_per_position(z, y).sum().item() / y.numel()),
            ),
            mistake(
                "the mean of per-sequence perplexities",
                "average the NLL over all real tokens first, then take one exp: a short "
                "sequence must not weigh as much as a long one",
                lambda z, y: (
                    (_nll_per_position(z, y).sum(1) / (y != -100).sum(1)).exp().mean().item()
                ),
            ),
            mistake(
                "padding scored as token 0",
                "-100 is not a token: leave those positions out instead of scoring them",
                lambda z, y: math.exp(
                    -torch.log_softmax(z, -1).gather(-1, y.clamp(min=0)[..., None]).mean().item()
                ),
            ),
        ],
        quiet=quiet,
    )
