"""Notebook 09's exercises: the trainer's learning-rate schedule, and gradient accumulation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib import optim
from course_lib.check import Verdict, case, check, mistake

# ------------------------------------------------------------------- the learning-rate schedule


@dataclasses.dataclass(frozen=True)
class ScheduleFields:
    """The four fields of a `TrainConfig` that the schedule reads. The cases pass these rather
    than a whole TrainConfig, so that a verdict shows the learner every value that matters (a
    TrainConfig's repr is cut off after its first few fields), and the key does not import the
    trainer (which only its own modules import). tests/test_train.py checks that the trainer's
    own `learning_rate` passes these cases."""

    lr: float
    min_lr: float
    warmup_steps: int
    max_steps: int


def _library_schedule(step: int, config: ScheduleFields) -> float:
    """`optim.lr_at`, the schedule the trainer's `learning_rate` applies."""
    return optim.lr_at(
        step,
        base_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.max_steps,
        min_lr=config.min_lr,
    )


def _decays_to_zero(step: int, config: ScheduleFields) -> float:
    return optim.lr_at(
        step, base_lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.max_steps
    )


def _floor_added_to_full_cosine(step: int, config: ScheduleFields) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (min(step, config.max_steps) - config.warmup_steps) / (
        config.max_steps - config.warmup_steps
    )
    return config.min_lr + 0.5 * config.lr * (1 + math.cos(math.pi * progress))


def _cosine_from_step_zero(step: int, config: ScheduleFields) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(step, config.max_steps) / config.max_steps
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def lr_schedule(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(step, config) -> float: warm-up, then cosine to config.min_lr, against optim.lr_at."""
    c1 = ScheduleFields(lr=3e-3, min_lr=3e-4, warmup_steps=10, max_steps=100)
    c2 = ScheduleFields(lr=1e-3, min_lr=0.0, warmup_steps=0, max_steps=7)
    return check(
        fn,
        reference=_library_schedule,
        cases=[
            case(0, c1, label="the first step"),
            case(4, c1, label="mid warm-up"),
            case(10, c1, label="the peak"),
            case(55, c1, label="mid decay"),
            case(99, c1, label="the last step"),
            case(250, c1, label="after the end"),
            case(3, c2, label="no warm-up, no floor"),
        ],
        mistakes=[
            mistake(
                "a decay to zero", "the cosine ends at config.min_lr, not at 0", _decays_to_zero
            ),
            mistake(
                "the floor added on top",
                "the cosine spans lr - min_lr: min_lr + 0.5 * (lr - min_lr) * (1 + cos(...))",
                _floor_added_to_full_cosine,
            ),
            mistake(
                "a cosine that starts at step 0",
                "the decay starts after the warm-up: progress = (step - W) / (S - W)",
                _cosine_from_step_zero,
            ),
        ],
        quiet=quiet,
    )


# ------------------------------------------------------------------------ gradient accumulation


def _full_batch_gradient(
    w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, micro_batches: int
) -> torch.Tensor:
    """dL/dw (D, V) of the mean cross-entropy of x (B, D) @ w against y (B,), in one piece."""
    w = w.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(x @ w, y), w)
    return grad


def _summed_not_averaged(w, x, y, micro_batches):
    return _full_batch_gradient(w, x, y, micro_batches) * micro_batches


def _last_micro_batch_only(w, x, y, micro_batches):
    k = x.shape[0] // micro_batches
    return _full_batch_gradient(w, x[-k:], y[-k:], 1) / micro_batches


def _sum_reduction(w, x, y, micro_batches):
    w = w.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(x @ w, y, reduction="sum") / micro_batches, w)
    return grad


def _linear_batch(d: int, v: int, b: int, k: int, g: torch.Generator, label: str):
    """A case: w (D, V), x (B, D), y (B,) and k micro-batches."""
    w = torch.randn(d, v, generator=g)
    x = torch.randn(b, d, generator=g)
    y = torch.randint(0, v, (b,), generator=g)
    return case(w, x, y, k, label=label)


def accumulated_gradient(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(w (D, V), x (B, D), y (B,), micro_batches) -> dL/dw (D, V), against the gradient of
    the whole batch's mean cross-entropy taken in one piece."""
    g = torch.Generator().manual_seed(9)
    return check(
        fn,
        reference=_full_batch_gradient,
        cases=[
            _linear_batch(5, 7, 8, 2, g, label="2 x 4"),
            _linear_batch(3, 11, 12, 3, g, label="3 x 4, odd sizes"),
            _linear_batch(4, 6, 6, 1, g, label="no accumulation"),
            _linear_batch(4, 6, 6, 6, g, label="one row per micro-batch"),
        ],
        mistakes=[
            mistake(
                "micro-batch losses not divided by their number",
                "each micro-batch's mean loss is 1/k of the batch: divide it by micro_batches",
                _summed_not_averaged,
            ),
            mistake(
                "gradients zeroed inside the loop",
                "backward() adds into .grad: zero it once, before the first micro-batch",
                _last_micro_batch_only,
            ),
            mistake(
                "a summed loss",
                "F.cross_entropy's default reduction is the mean over rows; keep it",
                _sum_reduction,
            ),
        ],
        quiet=quiet,
    )
