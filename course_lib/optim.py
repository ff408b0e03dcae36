"""Optimizers and learning-rate schedules written by hand, with torch.optim's exact semantics.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)   # or Adam(...), AdamW(...)
    loss.backward(); opt.step(); opt.zero_grad()
    lr = lr_at(step, base_lr=3e-4, warmup_steps=100, total_steps=2000)

Each optimizer keeps per-parameter state in plain tensors and updates parameters in place, one
parameter at a time, so that every line of the update rule can be read; the tests show each
equal to `torch.optim` after 100 steps. Every update is elementwise: a parameter of any shape
`(*)` gets state tensors of the same shape `(*)`.

- SGD: g = grad + weight_decay * p (L2 added to the gradient); with momentum
  b = momentum * b + (1 - dampening) * g (b = g on the first step); the step uses
  g + momentum * b (nesterov) or b; p -= lr * step.
- Adam: g = grad + weight_decay * p (L2); m = beta1 m + (1 - beta1) g;
  v = beta2 v + (1 - beta2) g^2; p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
- AdamW: the same, but the decay is decoupled: p *= 1 - lr * weight_decay before the Adam step,
  and the gradient is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from course_lib.validate import as_int, int_at_least

# --------------------------------------------------------------------------- argument checks


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _non_negative(name: str, value: object) -> float:
    value = _number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_lr(lr: object) -> float:
    return _non_negative("lr", lr)


def _check_betas(betas: object) -> tuple[float, float]:
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    out = []
    for i, b in enumerate(betas):
        b = _number(f"betas[{i}]", b)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {b}")
        out.append(b)
    return out[0], out[1]


def _check_eps(eps: object) -> float:
    eps = _number("eps", eps)
    if eps <= 0:
        raise ValueError(f"eps must be > 0 (it keeps the division finite), got {eps}")
    return eps


def _params(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors (e.g. model.parameters()), not one")
    out = list(params)
    if not out:
        raise ValueError("params is empty: nothing to optimize")
    for i, p in enumerate(out):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{i}] must be a tensor, got {type(p).__name__}")
        if not p.is_floating_point():
            raise TypeError(f"params[{i}] must be floating point, got {p.dtype}")
    return out


# --------------------------------------------------------------------------- the optimizers


class Optimizer:
    """What the three optimizers share: a list of parameters, zero_grad and a learning rate."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float):
        self.params = _params(params)
        self.lr = _check_lr(lr)

    def zero_grad(self) -> None:
        """Forget the gradients (set them to None, like torch's default set_to_none=True)."""
        for p in self.params:
            p.grad = None

    def set_lr(self, lr: float) -> None:
        """Change the learning rate (a schedule calls this before each step)."""
        self.lr = _check_lr(lr)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(i, p, p.grad)

    def _update(self, i: int, p: torch.Tensor, grad: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 decay."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(params, lr)
        self.momentum = _non_negative("momentum", momentum)
        self.dampening = _number("dampening", dampening)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)  # each like p: (*)

    def _update(self, i: int, p: torch.Tensor, grad: torch.Tensor) -> None:
        g = grad + self.weight_decay * p if self.weight_decay else grad  # L2: decay in the grad
        if self.momentum:
            b = self.buffers[i]
            if b is None:
                b = g.clone()  # first step: the buffer is the gradient, undamped
            else:
                b = self.momentum * b + (1 - self.dampening) * g
            self.buffers[i] = b
            g = g + self.momentum * b if self.nesterov else b
        p.sub_(self.lr * g)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; weight_decay is L2 (added to the grad)."""

    decoupled = False

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.betas = _check_betas(betas)
        self.eps = _check_eps(eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.t = [0] * len(self.params)  # steps taken, per parameter
        self.m = [torch.zeros_like(p) for p in self.params]  # first moment, (*) like p
        self.v = [torch.zeros_like(p) for p in self.params]  # second moment, (*) like p

    def _update(self, i: int, p: torch.Tensor, grad: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        g = grad
        if self.weight_decay:
            if self.decoupled:
                p.mul_(1 - self.lr * self.weight_decay)  # AdamW: shrink p, leave g alone
            else:
                g = g + self.weight_decay * p  # Adam: L2, scaled by Adam like any gradient
        self.t[i] += 1
        t = self.t[i]
        self.m[i].lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
        self.v[i].mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
        bias1 = 1 - beta1**t
        bias2 = 1 - beta2**t
        denom = self.v[i].sqrt() / math.sqrt(bias2) + self.eps  # eps after the correction
        p.addcdiv_(self.m[i], denom, value=-self.lr / bias1)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay (default 0.01)."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def adam_update(
    p: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step as a pure function: returns new (p, m, v), all shaped like p: (*).

    t is the number of this step, counting from 1 (it sets the bias correction).
    """
    beta1, beta2 = _check_betas(betas)
    eps, lr = _check_eps(eps), _check_lr(lr)
    t = as_int(t, "t")
    if t < 1:
        raise ValueError(f"t must be the step number, an int >= 1, got {t!r}")
    for name, x in (("grad", grad), ("m", m), ("v", v)):
        if x.shape != p.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but p has {tuple(p.shape)}")
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m, v


# --------------------------------------------------------------------------- schedules


def _int(name: str, value: object, minimum: int) -> int:
    return int_at_least(value, name, minimum)


def lr_at(
    step: int,
    *,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of step `step` (0-based): linear warm-up, then cosine decay.

    Steps 0 .. warmup_steps - 1 rise linearly, base_lr * (step + 1) / warmup_steps, so that the
    first step already moves; from warmup_steps to total_steps the rate follows half a cosine
    from base_lr down to min_lr; after total_steps it stays at min_lr.
    """
    step = _int("step", step, 0)
    warmup_steps = _int("warmup_steps", warmup_steps, 0)
    total_steps = _int("total_steps", total_steps, 1)
    base_lr = _check_lr(base_lr)
    min_lr = _non_negative("min_lr", min_lr)
    if warmup_steps > total_steps:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must not exceed total_steps ({total_steps})"
        )
    if min_lr > base_lr:
        raise ValueError(f"min_lr ({min_lr}) must not exceed base_lr ({base_lr})")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # in [0, 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
