"""Notebook 00's exercises: the relative error of a result against a reference, and the
PyTorch primer's two: pairwise squared distances by broadcasting, and gradient descent on a line
by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

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


# --------------------------------------------------------------------------- the PyTorch primer


def _sq_norms(t: torch.Tensor, keepdim: bool) -> torch.Tensor:
    return (t * t).sum(dim=1, keepdim=keepdim)


def pairwise_sq_distances(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x (N, D), y (M, D)) -> (N, M) squared distances ||x_i - y_j||^2, against torch.cdist."""
    g = torch.Generator().manual_seed(3)

    def r(*shape: int) -> torch.Tensor:  # float64: the expansion and the direct form agree
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    itself = r(5, 4)
    return check(
        fn,
        reference=lambda x, y: torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist") ** 2,
        cases=[
            case(r(4, 3), r(4, 3), label="4 points against 4, D = 3"),
            case(r(3, 5), r(6, 5), label="3 points against 6, D = 5"),
            case(r(1, 2), r(5, 2), label="one point against 5"),
            case(itself, itself.clone(), label="a set against itself (zeros on the diagonal)"),
            case(100 + 10 * r(4, 1), 100 + 10 * r(3, 1), label="D = 1, far from the origin"),
        ],
        mistakes=[
            mistake(
                "the squared norms of x without keepdim",
                "x's norms have shape (N,), which broadcasts as a row (1, N), so every row gets "
                "the norms of y's index: keep them as a column, sum(dim=1, keepdim=True) -> (N, 1)",
                lambda x, y: _sq_norms(x, False) - 2 * x @ y.T + _sq_norms(y, False),
            ),
            mistake(
                "the factor 2 left out",
                "||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2: the cross term counts twice",
                lambda x, y: _sq_norms(x, True) - x @ y.T + _sq_norms(y, False),
            ),
            mistake(
                "the distance, not its square",
                "the exercise asks for squared distances: no square root (no cdist, no .norm())",
                lambda x, y: torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist"),
            ),
            mistake(
                "rows and columns swapped",
                "entry [i, j] pairs x's point i with y's point j, so the result is (N, M): "
                "x[:, None, :] - y[None, :, :], or x @ y.T",
                lambda x, y: (
                    (torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist") ** 2).T
                ),
            ),
        ],
        quiet=quiet,
    )


def _sgd_on_a_line(x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> tuple[float, float]:
    """The library's way: nn.Linear(1, 1) from w = b = 0, F.mse_loss and torch.optim.SGD."""
    model = torch.nn.utils.skip_init(torch.nn.Linear, 1, 1)  # no draw from the global RNG
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(model(x[:, None]).squeeze(1), y)  # (N, 1) -> (N,) against (N,)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.weight.item(), model.bias.item()


def _descend(
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int,
    *,
    zero_grads: bool = True,
    total: bool = False,
    uphill: bool = False,
) -> tuple[float, float]:
    """Gradient descent by hand, with one of a learner's plausible slips switched on."""
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    sign = 1.0 if uphill else -1.0
    for _ in range(steps):
        sq = (w * x + b - y) ** 2  # (N,)
        loss = sq.sum() if total else sq.mean()
        loss.backward()
        with torch.no_grad():
            w += sign * lr * w.grad
            b += sign * lr * b.grad
        if zero_grads:
            w.grad, b.grad = None, None
    return w.item(), b.item()


def _noisy_line(n: int, slope: float, intercept: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g) * 2 - 1  # (n,) in [-1, 1)
    return x, slope * x + intercept + 0.1 * torch.randn(n, generator=g)  # (n,), (n,)


def fit_line(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x (N,), y (N,), lr, steps) -> (w, b) as floats after `steps` steps of gradient descent
    on the mean squared error from w = b = 0, against nn.Linear and torch.optim.SGD."""
    return check(
        fn,
        reference=_sgd_on_a_line,
        cases=[
            case(*_noisy_line(20, 2.0, -1.0, seed=1), 0.1, 1, label="one step"),
            case(*_noisy_line(50, 2.0, -1.0, seed=2), 0.1, 20, label="20 steps"),
            case(*_noisy_line(8, -3.0, 0.5, seed=3), 0.3, 30, label="a falling line, lr 0.3"),
            case(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0]), 0.5, 50, label="two points"),
        ],
        mistakes=[
            mistake(
                "gradients never reset",
                "backward() adds to .grad: set w.grad and b.grad to None (or zero them) after "
                "each update, or every step also replays all the earlier gradients",
                lambda x, y, lr, steps: _descend(x, y, lr, steps, zero_grads=False),
            ),
            mistake(
                "the sum of squared errors instead of the mean",
                "the loss is the mean over the N points (as F.mse_loss computes it); a sum makes "
                "each step N times larger",
                lambda x, y, lr, steps: _descend(x, y, lr, steps, total=True),
            ),
            mistake(
                "a step up the gradient",
                "the gradient points uphill: subtract lr * grad to make the loss smaller",
                lambda x, y, lr, steps: _descend(x, y, lr, steps, uphill=True),
            ),
        ],
        quiet=quiet,
    )
