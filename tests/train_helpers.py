"""Helpers shared by the trainer's tests (the text_file fixture is in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from course_lib import train as T


def tiny(text_file: Path, **changes) -> T.TrainConfig:
    """A one-thread configuration that trains in about a second."""
    base = dict(
        data=str(text_file),
        n_layers=1,
        n_heads=2,
        d_model=32,
        d_ff=64,
        block_size=16,
        batch_size=8,
        max_steps=24,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=4,
        eval_every=8,
        eval_windows=16,
        log_every=1,
        sample_tokens=0,
        device="cpu",
        compile="0",
        threads=1,
    )
    base.update(changes)
    return T.TrainConfig(**base)


def quiet(_msg: str) -> None:
    """A log function that prints nothing."""


def stop_after(n: int):
    """A should_stop that says yes after its n-th call (after optimizer step n)."""
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= n

    return should_stop


def fit(model, opt, x, y, steps: int) -> list:
    """`steps` full-batch steps of mean-squared error with `opt`; copies of the parameters after
    them (the optimizer tests compare such trajectories)."""
    import torch.nn.functional as F

    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]
