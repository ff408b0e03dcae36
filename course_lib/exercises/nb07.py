"""Notebook 07's exercises: one Adam step, the warm-up + cosine learning-rate schedule, and one
Newton-Schulz step of Muon."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib import optim
from course_lib.check import Verdict, case, check, mistake


def _reference_adam(p, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    return optim.adam_update(p, grad, m, v, t, lr=lr, betas=(beta1, beta2), eps=eps)


def _adam_without_correction(p, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
    return p - lr * m / (v.sqrt() + eps), m, v


def _adam_eps_inside(p, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (v_hat + eps).sqrt(), m, v


def _adam_grad_not_squared(p, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad.abs()
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_step(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(p, grad, m, v, t, lr=, beta1=, beta2=, eps=) -> (p, m, v), against optim.adam_update."""
    g = torch.Generator().manual_seed(7)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    z = torch.zeros(3, 5)
    return check(
        fn,
        reference=_reference_adam,
        cases=[
            case(r(3, 5), r(3, 5), z, z, 1, label="first step, (3, 5)"),
            case(r(7), r(7), r(7), u(7), 10, lr=0.01, label="step 10, odd length"),
            case(
                r(1),
                torch.tensor([1e-6]),
                torch.zeros(1),
                torch.zeros(1),
                1,
                lr=0.1,
                eps=1e-3,
                label="tiny gradient, large eps",
            ),
            case(r(2, 3), r(2, 3), r(2, 3), u(2, 3), 3, beta1=0.5, beta2=0.9, label="other betas"),
        ],
        mistakes=[
            mistake(
                "no bias correction",
                "m and v start at 0: divide them by 1 - beta1**t and 1 - beta2**t",
                _adam_without_correction,
            ),
            mistake(
                "eps inside the square root",
                "PyTorch adds eps after the root: sqrt(v_hat) + eps, not sqrt(v_hat + eps)",
                _adam_eps_inside,
            ),
            mistake(
                "v from |g| instead of g**2",
                "the second moment averages the squared gradient, grad**2",
                _adam_grad_not_squared,
            ),
        ],
        quiet=quiet,
    )


def _schedule(step, base_lr, warmup_steps, total_steps):
    return optim.lr_at(step, base_lr=base_lr, warmup_steps=warmup_steps, total_steps=total_steps)


def _warmup_from_zero(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    return _schedule(step, base_lr, warmup_steps, total_steps)


def _cosine_over_all_steps(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def _full_cosine(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (min(step, total_steps) - warmup_steps) / (total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(2 * math.pi * progress))


def warmup_cosine(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(step, base_lr, warmup_steps, total_steps) -> lr, against optim.lr_at (min_lr 0)."""
    return check(
        fn,
        reference=_schedule,
        cases=[
            case(0, 1.0, 10, 100, label="the first step"),
            case(5, 3e-4, 10, 100, label="mid warm-up"),
            case(10, 3e-4, 10, 100, label="the peak"),
            case(55, 3e-4, 10, 100, label="mid decay"),
            case(99, 3e-4, 10, 100, label="the last step"),
            case(150, 3e-4, 10, 100, label="after the end"),
            case(7, 0.1, 0, 13, label="no warm-up"),
        ],
        mistakes=[
            mistake(
                "a warm-up that starts at 0",
                "step 0 would not move at all: use (step + 1) / warmup_steps",
                _warmup_from_zero,
            ),
            mistake(
                "cosine over all steps, warm-up included",
                "the cosine starts at the end of the warm-up: progress = (step - W) / (T - W)",
                _cosine_over_all_steps,
            ),
            mistake(
                "a full cosine period",
                "half a period takes 1 down to -1: cos(pi * progress), not cos(2 * pi * progress)",
                _full_cosine,
            ),
        ],
        quiet=quiet,
    )


def _ns_reference(x, a, b, c):
    return optim.newton_schulz_step(x, a, b, c)


def _ns_elementwise(x, a, b, c):
    return a * x + b * x**3 + c * x**5


def _ns_gram_squared_elementwise(x, a, b, c):
    gram = x @ x.T
    return a * x + b * gram @ x + c * (gram * gram) @ x


def _ns_coefficients_swapped(x, a, b, c):
    gram = x @ x.T
    return a * x + c * gram @ x + b * gram @ gram @ x


def newton_schulz_step(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x, a, b, c) -> a x + b (x x^T) x + c (x x^T)^2 x for x (m, n), against
    optim.newton_schulz_step (float64 inputs)."""
    g = torch.Generator().manual_seed(19)

    def r(*shape: int) -> torch.Tensor:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        return x / x.norm()  # Frobenius norm 1, as Muon scales it before the first step

    abc = optim.NS_COEFFICIENTS
    return check(
        fn,
        reference=_ns_reference,
        cases=[
            case(r(3, 5), *abc, label="a wide (3, 5) matrix, Muon's coefficients"),
            case(r(4, 4), *abc, label="a square (4, 4) matrix"),
            case(r(1, 6), *abc, label="one row (1, 6)"),
            case(r(5, 2), *abc, label="a tall (5, 2) matrix"),
            case(r(2, 3), 1.5, -0.5, 0.0, label="the cubic (1.5, -0.5, 0)"),
        ],
        mistakes=[
            mistake(
                "elementwise powers",
                "the polynomial acts on singular values, not on entries: x**3 is not (x @ x.T) @ x",
                _ns_elementwise,
            ),
            mistake(
                "the Gram matrix squared elementwise",
                "(x x^T)^2 is the matrix product gram @ gram, not gram * gram",
                _ns_gram_squared_elementwise,
            ),
            mistake(
                "b and c swapped",
                "b multiplies the cubic term (x x^T) x and c the quintic (x x^T)^2 x",
                _ns_coefficients_swapped,
            ),
        ],
        quiet=quiet,
    )
