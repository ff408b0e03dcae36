"""Notebook 00's exercise: the relative error of a result against a reference."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.check import Verdict, case, check, mistake


def relative_error(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(got, reference) -> ||got - reference|| / ||reference|| as a float."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 5, generator=g)
    return check(
        fn,
        reference=lambda got, r: (
            torch.linalg.vector_norm(got - r) / torch.linalg.vector_norm(r)
        ).item(),
        cases=[
            case(ref + 0.01 * torch.randn(4, 5, generator=g), ref, label="small noise"),
            case(ref.clone(), ref, label="exact match"),
            case(1e6 * (ref + 0.01), 1e6 * ref, label="large values"),
            case(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 5.0]), label="two numbers"),
        ],
        mistakes=[
            mistake(
                "the absolute error",
                "divide by the reference's norm, so the error does not grow with the values",
                lambda got, r: (got - r).norm().item(),
            ),
            mistake(
                "dividing by the norm of the result",
                "the reference is the yardstick: divide by its norm",
                lambda got, r: ((got - r).norm() / got.norm()).item(),
            ),
        ],
        quiet=quiet,
    )
