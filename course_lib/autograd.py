"""Reverse-mode automatic differentiation, small enough to read in one sitting.

A scalar `Value` records the operation that made it and its inputs, so every expression builds a
computational graph (计算图). `Value.backward()` visits that graph in reverse topological order
and applies the chain rule once per edge: this is backpropagation (反向传播).

    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    loss = (a * b + a.tanh()).relu()
    loss.backward()  # a.grad, b.grad now hold d loss / d a, d loss / d b
    zero_grad([a, b])  # backward() adds into .grad, as in PyTorch: zero it between passes

Two tools used around real training live here as well, each proven equal to PyTorch's in
tests/test_autograd.py:

- `gradcheck(fn, inputs)`: compare the gradient `torch.autograd` computes for `fn` with central
  finite differences in float64 (`torch.autograd.gradcheck` gives the same verdict);
- `clip_grad_norm_(params, max_norm)`: rescale gradients so that their joint norm is at most
  `max_norm` (equal to `torch.nn.utils.clip_grad_norm_`, same return value).

This module imports no other course module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

Number = int | float


def _as_value(x: Value | Number, what: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"{what} must be a Value, int or float, got {type(x).__name__}")
    return Value(float(x), _op="const")


class Value:
    """A scalar in a computational graph: `data` (the number), `grad` (d output / d this).

    `_prev` holds the Values it was computed from, `_op` the operation's name, and
    `_backward` the local chain-rule step that adds this node's gradient into its inputs'.
    """

    __slots__ = ("data", "grad", "label", "_prev", "_op", "_backward")

    def __init__(
        self,
        data: Number,
        _children: tuple[Value, ...] = (),
        _op: str = "",
        label: str = "",
    ) -> None:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise TypeError(f"data must be an int or float, got {type(data).__name__}")
        self.data = float(data)
        self.grad = 0.0
        self.label = label
        self._prev = tuple(_children)
        self._op = _op
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Value | Number) -> Value:
        other = _as_value(other, "other")
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = _as_value(other, "other")
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, bool) or not isinstance(exponent, int | float):
            raise TypeError(
                f"exponent must be an int or float constant, got {type(exponent).__name__}"
            )
        if self.data == 0.0 and exponent < 0:
            raise ZeroDivisionError(f"0.0 ** {exponent} is undefined (division by zero)")
        if self.data < 0.0 and not float(exponent).is_integer():
            raise ValueError(
                f"a negative base ({self.data}) needs an integer exponent, got {exponent}"
            )
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:  # d(a^n)/da = n a^(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-_as_value(other, "other"))

    def __truediv__(self, other: Value | Number) -> Value:
        other = _as_value(other, "other")
        if other.data == 0.0:
            raise ZeroDivisionError("division by a Value whose data is 0.0")
        return self * other**-1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return _as_value(other, "other") - self

    def __rtruediv__(self, other: Number) -> Value:
        return _as_value(other, "other") / self

    # ------------------------------------------------------------------ functions
    def tanh(self) -> Value:
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:  # d tanh(a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - t * t) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        e = math.exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward() -> None:  # d e^a/da = e^a
            self.grad += e * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0.0:
            raise ValueError(f"log needs a positive Value, got {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:  # d log(a)/da = 1/a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward() -> None:  # 1 where a > 0, else 0 (0 at a == 0, as in PyTorch)
            self.grad += (1.0 if self.data > 0.0 else 0.0) * out.grad

        out._backward = _backward
        return out

    # ------------------------------------------------------------------ backprop
    def backward(self) -> None:
        """Add d self / d v into `.grad` of every Value v this one depends on (self included).

        Gradients accumulate across calls, as in PyTorch: a second `backward()` without
        `zero_grad` in between leaves twice the gradient. Call `zero_grad` between passes.
        """
        order = topological_order(self)
        # This pass's chain rule must see only this pass's gradients: an intermediate node
        # passes its whole `.grad` on to its inputs, so a gradient left from an earlier pass
        # would be passed on (and counted) again. Set the earlier gradients aside, run the
        # pass from 0, then add them back.
        earlier = [v.grad for v in order]
        for v in order:
            v.grad = 0.0
        self.grad = 1.0  # d self / d self
        for v in reversed(order):  # outputs before inputs: each node's grad is complete
            v._backward()
        for v, g in zip(order, earlier, strict=True):
            v.grad += g


def topological_order(root: Value) -> list[Value]:
    """Every Value `root` depends on, inputs before the Values computed from them; root last.

    Iterative depth-first search, so deep graphs do not hit Python's recursion limit.
    """
    if not isinstance(root, Value):
        raise TypeError(f"root must be a Value, got {type(root).__name__}")
    order: list[Value] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(node._prev):
            if id(child) not in seen:
                stack.append((child, False))
    return order


def zero_grad(values: Iterable[Value]) -> None:
    """Set `.grad = 0.0` on every Value given."""
    for v in values:
        if not isinstance(v, Value):
            raise TypeError(f"values must hold Values, got {type(v).__name__}")
        v.grad = 0.0


def graph_text(root: Value) -> str:
    """The graph behind `root` as text, one line per node in topological order.

    Each line: `name = op(inputs)   data=...   grad=...`; unlabelled intermediate nodes are
    named n0, n1, ... in the order they appear.
    """
    order = topological_order(root)
    names: dict[int, str] = {}
    for v in order:
        names[id(v)] = v.label or f"n{len(names)}"
    width = max(len(names[id(v)]) for v in order)
    lines = []
    for v in order:
        name = names[id(v)].ljust(width)
        if v._prev:
            args = ", ".join(names[id(c)] for c in v._prev)
            expr = f"{v._op}({args})"
        else:
            expr = "constant" if v._op == "const" else "input"
        lines.append(f"{name} = {expr:<16} data={v.data:+.4f}  grad={v.grad:+.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- gradient check


def _check_inputs(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"inputs[{i}] must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != torch.float64:
            raise ValueError(
                f"inputs[{i}] must be float64 for finite differences, got {x.dtype} (use .double())"
            )
        if not x.requires_grad:
            raise ValueError(f"inputs[{i}] must have requires_grad=True")
    return inputs


def numerical_jacobian(
    fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], eps: float = 1e-6
) -> list[torch.Tensor]:
    """Central differences: per input x, a (fn(...).numel(), x.numel()) float64 matrix.

    Column j is (fn(x + eps e_j) - fn(x - eps e_j)) / (2 eps), every other input held fixed.
    """
    inputs = _check_inputs(inputs)
    if not (isinstance(eps, int | float) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    with torch.no_grad():
        base = [x.detach().clone() for x in inputs]
        n_out = torch.as_tensor(fn(*base)).numel()
        jacobians = []
        for x in base:
            jac = torch.zeros(n_out, x.numel(), dtype=torch.float64)
            flat = x.view(-1)
            for j in range(x.numel()):
                old = flat[j].item()
                flat[j] = old + eps
                plus = torch.as_tensor(fn(*base)).reshape(-1).double()
                flat[j] = old - eps
                minus = torch.as_tensor(fn(*base)).reshape(-1).double()
                flat[j] = old
                jac[:, j] = (plus - minus) / (2 * eps)
            jacobians.append(jac)
    return jacobians


def analytical_jacobian(
    fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """What backprop says: per input x, a (fn(...).numel(), x.numel()) matrix, row by row.

    Row i is the gradient of output element i, from one `torch.autograd.grad` call each.
    """
    inputs = _check_inputs(inputs)
    out = fn(*inputs)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"fn must return a torch.Tensor, got {type(out).__name__}")
    flat_out = out.reshape(-1)
    jacobians = [torch.zeros(flat_out.numel(), x.numel(), dtype=torch.float64) for x in inputs]
    for i in range(flat_out.numel()):
        if not flat_out.requires_grad:
            break  # the output does not depend on any input: every gradient is 0
        grads = torch.autograd.grad(flat_out[i], inputs, retain_graph=True, allow_unused=True)
        for jac, g in zip(jacobians, grads, strict=True):
            if g is not None:
                jac[i] = g.reshape(-1)
    return jacobians


def gradcheck(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    eps: float = 1e-6,
    rtol: float = 1e-7,
    atol: float = 1e-7,
) -> bool:
    """True when autograd's Jacobian of `fn` at `inputs` matches central differences.

    `inputs`: float64 tensors with requires_grad=True (any shapes); `fn(*inputs)` returns a
    tensor of any shape. Element-wise |analytic - numeric| <= atol + rtol * |numeric|, the
    same kind of test as `torch.autograd.gradcheck` (which has looser default tolerances).
    """
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, int | float) and tol >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {tol!r}")
    numeric = numerical_jacobian(fn, inputs, eps)
    analytic = analytical_jacobian(fn, inputs)
    return all(
        torch.allclose(a, n, rtol=rtol, atol=atol) for a, n in zip(analytic, numeric, strict=True)
    )


# --------------------------------------------------------------------------- clipping


def clip_grad_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> torch.Tensor:
    """Scale every `.grad` in place so that their joint norm is at most `max_norm`.

    The joint norm treats all gradients as one long vector: the `norm_type`-norm of the
    per-tensor norms (for inf, the largest absolute entry). If it exceeds `max_norm`, every
    gradient is multiplied by max_norm / (norm + 1e-6); otherwise nothing changes. Parameters
    whose `.grad` is None are skipped. Returns the norm *before* clipping, a 0-d tensor, as
    `torch.nn.utils.clip_grad_norm_` does.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"parameters[{i}] must be a torch.Tensor, got {type(p).__name__}")
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float | torch.Tensor):
        raise TypeError(f"max_norm must be a number, got {type(max_norm).__name__}")
    max_norm = float(max_norm)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    if norm_type == math.inf:
        per_tensor = [g.detach().abs().max() if g.numel() else g.new_zeros(()) for g in grads]
        total = torch.stack(per_tensor).max()
    else:
        per_tensor = [torch.linalg.vector_norm(g.detach(), norm_type) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(per_tensor), norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is {total.item()}: "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # 1.0: leave small gradients alone
    for g in grads:
        g.detach().mul_(coef.to(g.dtype))
    return total
