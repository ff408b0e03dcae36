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
- Muon (for 2-D hidden matrices only): b = momentum * b + (1 - momentum) * g; the update
  u = (1 - momentum) * g + momentum * b (nesterov) or b is orthogonalised by a few Newton-Schulz
  steps (`orthogonalize`, about U V^T of u = U S V^T); p *= 1 - lr * weight_decay;
  p -= lr * sqrt(max(1, rows / cols)) * orthogonalize(u). `ns_dtype=torch.bfloat16` follows
  torch.optim.Muon's order of operations and equals it bit for bit; `torch.float64` computes
  the same definition with float64 rounding. Muon's parameters are matrices `(m, n)`, its
  momentum buffer `(m, n)` too; `Combined` steps it together with AdamW for everything else.
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
    """What the hand-written optimizers share: the parameters, zero_grad and a learning rate."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float):
        self.params = _params(params)
        self.lr = _check_lr(lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set them to None (torch's default) or to zeros."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

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


# --------------------------------------------------------------------------- Muon

# Keller Jordan's quintic Newton-Schulz coefficients (torch.optim.Muon's defaults): each step
# maps every singular value s of X to a s + b s^3 + c s^5, chosen for a steep slope at 0
# (a = 3.4445) so that small singular values grow fast; after 5 steps they all lie in about
# [0.7, 1.2], not exactly at 1, which trains as well as U V^T and costs 5 steps instead of 30.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7
NS_DTYPES = (torch.bfloat16, torch.float32, torch.float64)
ADJUST_LR = ("original", "match_rms_adamw", "none")
MUON_MIN_TORCH = "2.9"  # torch.optim.Muon, the reference, ships from torch 2.9


def newton_schulz_step(x: torch.Tensor, a: float, b: float, c: float) -> torch.Tensor:
    """One Newton-Schulz step: x (m, n) -> a x + b (x x^T) x + c (x x^T)^2 x, (m, n).

    With x = U S V^T, x x^T = U S^2 U^T, so the step is U (a S + b S^3 + c S^5) V^T: the same
    singular vectors, each singular value through the odd polynomial. Written with addmm, in
    torch.optim.Muon's order (which its bfloat16 rounding depends on)."""
    gram = x @ x.T  # (m, m)
    poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b gram + c gram @ gram, (m, m)
    return torch.addmm(x, poly, x, beta=a)  # a x + poly @ x, (m, n)


def orthogonalize(
    g: torch.Tensor,
    steps: int = NS_STEPS,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = NS_EPS,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """Newton-Schulz orthogonalisation of g (m, n): about U V^T for g = U S V^T, in `dtype`.

    g is divided by its Frobenius norm (at least eps), which puts every singular value in
    [0, 1], then `steps` Newton-Schulz steps push them towards 1. A tall matrix is transposed
    first, so that the Gram matrix x x^T is the smaller (min(m, n), min(m, n)) one."""
    if not isinstance(g, torch.Tensor) or g.dim() != 2:
        shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        raise ValueError(f"g must be a matrix (m, n), got {shape}")
    if dtype not in NS_DTYPES:
        raise ValueError(f"dtype must be one of {NS_DTYPES}, got {dtype}")
    steps = int_at_least(steps, "steps", 0)
    if len(coefficients) != 3:
        raise ValueError(f"coefficients must be (a, b, c), got {coefficients!r}")
    eps = _check_eps(eps)
    x = g.to(dtype)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T  # (n, m)
    x = x / x.norm().clamp(min=eps)  # Frobenius norm 1: every singular value <= 1
    for _ in range(steps):
        x = newton_schulz_step(x, *coefficients)
    return x.T if tall else x


def muon_lr_scale(shape: tuple[int, ...] | torch.Size, adjust: str = "original") -> float:
    """The factor Muon multiplies its learning rate by for a (rows, cols) matrix.

    'original' (Keller Jordan's, torch's default): sqrt(max(1, rows / cols)); an orthogonal
    (rows, cols) matrix has entries of size about 1 / sqrt(max(rows, cols)), and the factor
    keeps a tall matrix's update from being too small. 'match_rms_adamw' (Moonshot's):
    0.2 sqrt(max(rows, cols)), which makes the update's RMS about AdamW's, so that AdamW's
    learning rate and weight decay carry over. 'none': 1."""
    if adjust not in ADJUST_LR:
        raise ValueError(f"adjust must be one of {ADJUST_LR}, got {adjust!r}")
    rows, cols = shape[:2]
    if adjust == "original":
        return math.sqrt(max(1, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols)) if adjust == "match_rms_adamw" else 1.0


class Muon(Optimizer):
    """Muon (Keller Jordan, 2024): momentum, then the update orthogonalised by Newton-Schulz.

    For 2-D hidden matrices only (attention and MLP weights); embeddings, the output layer,
    norms and biases belong to AdamW. Defaults are torch.optim.Muon's (lr 1e-3, decoupled
    weight decay 0.1, momentum 0.95, Nesterov). ns_dtype=torch.bfloat16 computes like torch
    (equal bit for bit); torch.float64 is the same definition in double precision."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = NS_EPS,
        ns_steps: int = NS_STEPS,
        adjust_lr: str = "original",
        ns_dtype: torch.dtype = torch.bfloat16,
    ):
        super().__init__(params, lr)
        for i, p in enumerate(self.params):
            if p.dim() != 2:
                raise ValueError(
                    f"params[{i}] has shape {tuple(p.shape)}: Muon takes matrices (m, n) only; "
                    "give embeddings, the output layer, norms and biases to AdamW"
                )
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.momentum = _non_negative("momentum", momentum)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        muon_lr_scale((1, 1), adjust_lr)  # checks the name
        orthogonalize(torch.zeros(1, 1), 0, ns_coefficients, eps, ns_dtype)  # checks the rest
        self.nesterov, self.adjust_lr, self.ns_dtype = nesterov, adjust_lr, ns_dtype
        self.ns_coefficients, self.eps = tuple(ns_coefficients), eps
        self.ns_steps = int_at_least(ns_steps, "ns_steps", 0)
        self.buffers = [torch.zeros_like(p) for p in self.params]  # momentum, (m, n) like p

    def _update(self, i: int, p: torch.Tensor, grad: torch.Tensor) -> None:
        b = self.buffers[i]
        b.lerp_(grad, 1 - self.momentum)  # b = momentum b + (1 - momentum) g
        u = grad.lerp(b, self.momentum) if self.nesterov else b  # (1 - momentum) g + momentum b
        o = orthogonalize(u, self.ns_steps, self.ns_coefficients, self.eps, self.ns_dtype)
        p.mul_(1 - self.lr * self.weight_decay)  # decoupled decay, with the unadjusted lr
        p.add_(o, alpha=-(self.lr * muon_lr_scale(p.shape, self.adjust_lr)))


def torch_muon() -> type:
    """torch.optim.Muon, the reference Muon is proven equal to (and the trainer's Muon); a
    RuntimeError that says what to do on torch < 2.9, which lacks it."""
    cls = getattr(torch.optim, "Muon", None)
    if cls is None:
        raise RuntimeError(
            f"torch.optim.Muon needs torch >= {MUON_MIN_TORCH}, and this is torch "
            f"{torch.__version__}: upgrade torch (pip install 'torch>={MUON_MIN_TORCH}'); "
            "course_lib.optim.Muon itself runs on any torch"
        )
    return cls


class Combined:
    """Several optimizers stepped as one, e.g. Muon for the hidden matrices and AdamW for the
    rest: step and zero_grad (torch.optim's optimizers or this module's), and for torch.optim's
    param_groups (every group, in order), state_dict and load_state_dict."""

    def __init__(self, *optimizers):
        if not optimizers:
            raise ValueError("Combined needs at least one optimizer")
        for i, o in enumerate(optimizers):
            if not (callable(getattr(o, "step", None)) and callable(getattr(o, "zero_grad", None))):
                raise TypeError(f"optimizers[{i}] is not an optimizer: {type(o).__name__}")
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("optimizers") if isinstance(state, dict) else None
        if not isinstance(saved, list) or len(saved) != len(self.optimizers):
            raise ValueError(
                f"state must hold {len(self.optimizers)} optimizers' states (from "
                "Combined.state_dict() of the same optimizers)"
            )
        for o, s in zip(self.optimizers, saved, strict=True):
            o.load_state_dict(s)


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
