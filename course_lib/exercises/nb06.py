"""Notebook 06's exercises: a scalar autograd engine, one linear layer's backward, d CE / d z.

`value_engine(Value)` checks a learner's `Value` class (data, grad, `__add__`, `__mul__`, `tanh`
and `backward()`) against `torch.autograd` in float64: small expressions first (each case
returns [out, d out / d input, ...]), then a small MLP of the learner's Values trained on spirals
for a few steps, whose loss curve must equal the same MLP's in torch (rtol 1e-6). Its named
mistakes are whole engines with one realistic bug each (`_Engine` and its subclasses below).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.check import Verdict, case, check, mistake

# --------------------------------------------------------------------------- the engine

# Expressions built from +, * (a Value or a number on the right) and .tanh() only, so that the
# same lambda runs on the learner's Values and on float64 tensors.
EXPRESSIONS: dict[str, Callable] = {
    "x*y + x": lambda x, y: x * y + x,
    "tanh(x*w + b)": lambda x, w, b: (x * w + b).tanh(),
    "(x*3 + 1) * y": lambda x, y: (x * 3.0 + 1.0) * y,
    "(x + x) * x": lambda x: (x + x) * x,
    "s * tanh(tanh(s)), s = x + y": lambda x, y: (lambda s: s * s.tanh().tanh())(x + y),
    "tanh(tanh(s)) * s, s = x + y": lambda x, y: (lambda s: s.tanh().tanh() * s)(x + y),
}
MLP = "train a 2-H-C tanh MLP with mean squared error; the loss at each step"


def _spirals(n_per: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Notebook 06's interleaved spirals, from a local generator: X (n_per * classes, 2) float64,
    y (n_per * classes,) class ids."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(0.1, 1.0, n_per, dtype=torch.float64)
    xs, ys = [], []
    for k in range(classes):
        angle = torch.linspace(k * 4.0, k * 4.0 + 4.0, n_per, dtype=torch.float64)
        angle = angle + 0.2 * torch.randn(n_per, generator=g, dtype=torch.float64)
        xs.append(torch.stack([r * torch.sin(angle), r * torch.cos(angle)], dim=1))
        ys.append(torch.full((n_per,), k))
    return torch.cat(xs), torch.cat(ys)


def _mlp_init(inputs: int, hidden: int, classes: int, seed: int) -> list[torch.Tensor]:
    """W1 (inputs, hidden), b1 (hidden,), W2 (hidden, classes), b2 (classes,), float64."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(inputs, hidden, generator=g, dtype=torch.float64),
        torch.zeros(hidden, dtype=torch.float64),
        torch.randn(hidden, classes, generator=g, dtype=torch.float64) / math.sqrt(hidden),
        torch.zeros(classes, dtype=torch.float64),
    ]


def _torch_mlp_curve(X, y, *, hidden, steps, lr, seed=0) -> torch.Tensor:
    """The reference: mean((tanh(X W1 + b1) W2 + b2 - onehot(y))^2), plain gradient descent."""
    params = [p.requires_grad_() for p in _mlp_init(X.shape[1], hidden, int(y.max()) + 1, seed)]
    targets = F.one_hot(y, params[3].shape[0]).double()  # (N, C)
    curve = []
    for _ in range(steps):
        W1, b1, W2, b2 = params
        Z = torch.tanh(X @ W1 + b1) @ W2 + b2  # (N, C)
        loss = ((Z - targets) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= lr * g
        curve.append(loss.item())
    return torch.tensor(curve, dtype=torch.float64)


def _engine_mlp_curve(cls: type, X, y, *, hidden, steps, lr, seed=0) -> torch.Tensor:
    """The same MLP built of `cls` scalars, one Value per weight, with +, * and tanh only."""
    W1, b1, W2, b2 = (t.tolist() for t in _mlp_init(X.shape[1], hidden, int(y.max()) + 1, seed))
    W1 = [[cls(v) for v in row] for row in W1]
    W2 = [[cls(v) for v in row] for row in W2]
    b1, b2 = [cls(v) for v in b1], [cls(v) for v in b2]
    params = [*b1, *b2, *(v for row in W1 + W2 for v in row)]
    n_classes = len(b2)
    targets = F.one_hot(y, n_classes).double().tolist()
    curve = []
    for _ in range(steps):
        for p in params:
            p.grad = 0.0
        total = None
        for xi, ti in zip(X.tolist(), targets, strict=True):
            h = []
            for j in range(hidden):
                a = b1[j]
                for d, xd in enumerate(xi):
                    a = a + W1[d][j] * xd
                h.append(a.tanh())
            for c in range(n_classes):
                z = b2[c]
                for j, hj in enumerate(h):
                    z = z + W2[j][c] * hj
                diff = z + (-ti[c])
                total = diff * diff if total is None else total + diff * diff
        loss = total * (1.0 / (len(targets) * n_classes))
        loss.backward()
        curve.append(loss.data)
        for p in params:
            p.data -= lr * p.grad
    return torch.tensor(curve, dtype=torch.float64)


def _on_torch(task: str, **inputs) -> torch.Tensor:
    """The reference: [out, d out / d input for each input] from torch.autograd, or the curve."""
    if task == MLP:
        return _torch_mlp_curve(**inputs)
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs.values()]
    out = EXPRESSIONS[task](*leaves)
    out.backward()
    return torch.tensor([out.item()] + [v.grad.item() for v in leaves], dtype=torch.float64)


class _OnEngine:
    """Runs a case on an engine class: the function `check` calls. An object, not a function,
    so that a verdict quotes the learner's line, never a line of this key."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, task: str, **inputs) -> torch.Tensor:
        try:
            self._returns_values()
            if task == MLP:
                return _engine_mlp_curve(self.cls, **inputs)
            leaves = [self.cls(v) for v in inputs.values()]
            out = EXPRESSIONS[task](*leaves)
            out.backward()
            return torch.tensor([out.data] + [v.grad for v in leaves], dtype=torch.float64)
        except NotImplementedError:
            raise  # the stub: check() turns it into "not yet"
        except Exception as e:
            where = _learner_frame(e)
            if where:
                e.args = (f"{e} (in {where})",)
            raise

    def _returns_values(self) -> None:
        """A clear error when an operation returns something other than a Value (None, a float)."""
        a, b = self.cls(0.5), self.cls(-2.0)
        for what, make in [
            ("a + b", lambda: a + b),
            ("a + 1.0", lambda: a + 1.0),
            ("a * b", lambda: a * b),
            ("a * 3.0", lambda: a * 3.0),
            ("a.tanh()", lambda: a.tanh()),
        ]:
            out = make()
            if not (hasattr(out, "data") and hasattr(out, "backward")):
                raise TypeError(
                    f"{what} gave {type(out).__name__}, not a {self.cls.__name__}: each operation "
                    "must return the new Value it made"
                )


def _learner_frame(error: BaseException) -> str:
    """'_backward: `self.grad += ...`': the innermost traceback line outside this module, or ''."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    if not frames or not frames[-1].line:
        return ""
    return f"{frames[-1].name}: `{frames[-1].line.strip()}`"


class _Engine:
    """The answer, written like the exercise asks; each subclass below has one named bug."""

    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        self._backward = lambda: None

    def _give(self, amount):  # the chain rule's contribution from one use of this Value
        self.grad += amount

    def _value(self, other):
        return other if isinstance(other, _Engine) else type(self)(other)

    def __add__(self, other):
        other = self._value(other)
        out = type(self)(self.data + other.data, (self, other))

        def _backward():
            self._give(out.grad)
            other._give(out.grad)

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._value(other)
        out = type(self)(self.data * other.data, (self, other))

        def _backward():
            self._give(other.data * out.grad)
            other._give(self.data * out.grad)

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = type(self)(t, (self,))

        def _backward():
            self._give((1.0 - t * t) * out.grad)

        out._backward = _backward
        return out

    def _topological_order(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for child in v._prev:
                    visit(child)
                order.append(v)

        visit(self)
        return order

    def backward(self):
        order = self._topological_order()
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


class _Assigned(_Engine):
    def _give(self, amount):
        self.grad = amount  # BUG: =, so a Value used twice keeps only the last use


class _VisitingOrder(_Engine):
    def backward(self):  # BUG: each node's backward runs when first reached (breadth first)
        self.grad = 1.0
        queue, seen = [self], {id(self)}
        while queue:
            v = queue.pop(0)
            v._backward()
            for child in v._prev:
                if id(child) not in seen:
                    seen.add(id(child))
                    queue.append(child)


class _EveryPath(_Engine):
    def backward(self):  # BUG: recursion without a visited set: once per path, not per node
        self.grad = 1.0

        def walk(v):
            v._backward()
            for child in v._prev:
                walk(child)

        walk(self)


class _Forwards(_Engine):
    def backward(self):
        self.grad = 1.0
        for v in self._topological_order():  # BUG: inputs first; the grads are not there yet
            v._backward()


class _Unseeded(_Engine):
    def backward(self):
        for v in reversed(self._topological_order()):  # BUG: self.grad is still 0.0
            v._backward()


class _TanhOfInput(_Engine):
    def tanh(self):
        out = type(self)(math.tanh(self.data), (self,))

        def _backward():
            self._give((1.0 - self.data**2) * out.grad)  # BUG: the input, not tanh of it

        out._backward = _backward
        return out


class _Unswapped(_Engine):
    def __mul__(self, other):
        other = self._value(other)
        out = type(self)(self.data * other.data, (self, other))

        def _backward():
            self._give(self.data * out.grad)  # BUG: d(ab)/da is b, not a
            other._give(other.data * out.grad)

        out._backward = _backward
        return out


ENGINE_MISTAKES = [
    (
        "gradients assigned, not accumulated (= instead of +=)",
        "a Value used twice gets gradient from both uses: every _backward must ADD into its "
        "inputs' .grad (+=); with = the last use overwrites the others",
        _Assigned,
    ),
    (
        "backward in visiting order, not topological order",
        "a node may pass its gradient on only when every node that uses it has added into "
        "it: collect the nodes depth first, each after all of its inputs, then call _backward "
        "over that list reversed",
        _VisitingOrder,
    ),
    (
        "the graph walked once per path",
        "recursing into _prev without remembering which nodes were visited runs a shared "
        "node's _backward once per path to it: build the order with a visited set, and call "
        "each node's _backward exactly once",
        _EveryPath,
    ),
    (
        "the topological order walked forwards",
        "the order lists inputs before outputs; backpropagation goes from the output to the "
        "inputs, so call _backward over it reversed",
        _Forwards,
    ),
    (
        "the root's gradient not seeded with 1",
        "every gradient is a product that starts at d out / d out = 1: set self.grad = 1.0 "
        "before the first _backward, or everything stays 0",
        _Unseeded,
    ),
    (
        "tanh's slope taken at its input",
        "d tanh(a) / da = 1 - tanh(a)^2: square the OUTPUT t, not the input a",
        _TanhOfInput,
    ),
    (
        "the product rule with the inputs not swapped",
        "d(a*b)/da = b and d(a*b)/db = a: each input gets the OTHER input's data",
        _Unswapped,
    ),
]


def value_engine(cls: type, *, quiet: bool = False) -> Verdict:
    """A learner's Value class: expressions against torch.autograd (each case gives [out,
    d out / d x, ...] in float64), then a small MLP of its Values trained on spirals, whose loss
    curve must equal torch's (rtol 1e-6)."""
    if not isinstance(cls, type):
        raise TypeError(f"cls must be your Value class itself, got {type(cls).__name__}")
    X, y = _spirals(6, 3, seed=0)  # (18, 2), (18,)
    inputs = [
        ("x*y + x", dict(x=2.0, y=-3.0), "x used twice"),
        ("tanh(x*w + b)", dict(x=0.5, w=-1.5, b=0.25), "a neuron: tanh of a sum"),
        ("(x*3 + 1) * y", dict(x=-0.7, y=1.3), "numbers on the right"),
        ("(x + x) * x", dict(x=1.5), "x added to itself"),
        ("s * tanh(tanh(s)), s = x + y", dict(x=0.3, y=0.4), "s reused, short path first"),
        ("tanh(tanh(s)) * s, s = x + y", dict(x=0.3, y=0.4), "s reused, long path first"),
    ]
    cases = [
        case(task, **values, label=f"{task}: {why}; [out, d/d{', d/d'.join(values)}]")
        for task, values, why in inputs
    ]
    cases.append(
        case(
            MLP,
            X=X,
            y=y,
            hidden=5,
            steps=5,
            lr=0.5,
            label="an MLP 2-5-3 on 18 spiral points, 5 gradient steps: the loss curve",
        )
    )
    return check(
        _OnEngine(cls),
        reference=_on_torch,
        cases=cases,
        mistakes=[mistake(name, hint, _OnEngine(bug)) for name, hint, bug in ENGINE_MISTAKES],
        name=cls.__name__,
        rtol=1e-6,
        atol=1e-12,
        quiet=quiet,
    )


# --------------------------------------------------------------------------- one linear layer


def _linear_grads(x, W, b, dy):
    """torch.autograd's (dx, dW, db) for y = F.linear(x, W, b) with upstream gradient dy."""
    x, W, b = (t.detach().clone().requires_grad_() for t in (x, W, b))
    return torch.autograd.grad(F.linear(x, W, b), (x, W, b), dy)


def linear_backward(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x (B, in), W (out, in), b (out,), dy (B, out)) -> (dx, dW, db), against autograd."""
    g = torch.Generator().manual_seed(3)

    def layer(batch, n_in, n_out):
        return (
            torch.randn(batch, n_in, generator=g),
            torch.randn(n_out, n_in, generator=g),
            torch.randn(n_out, generator=g),
            torch.randn(batch, n_out, generator=g),
        )

    # each mistake is autograd's answer with one piece replaced by the wrong formula
    return check(
        fn,
        reference=_linear_grads,
        cases=[
            case(*layer(5, 4, 4), label="batch 5, square W (4, 4)"),
            case(*layer(1, 3, 2), label="batch 1, W (2, 3)"),
            case(*layer(7, 5, 3), label="batch 7, W (3, 5)"),
        ],
        mistakes=[
            mistake(
                "dL/dx through W transposed",
                "y = x W^T, so dx = dy W: (B, out)(out, in) -> (B, in); dy @ W.T only runs "
                "when W is square, and is wrong there",
                lambda x, W, b, dy: (dy @ W.T, *_linear_grads(x, W, b, dy)[1:]),
            ),
            mistake(
                "dL/db as a mean",
                "b is added to every row, so its gradient is the SUM of dy over the batch "
                "(any 1/B is already inside dy if the loss is a mean)",
                lambda x, W, b, dy: (*_linear_grads(x, W, b, dy)[:2], dy.mean(0)),
            ),
            mistake(
                "dL/dW transposed",
                "dW must have W's shape (out, in): multiply so that out comes first",
                lambda x, W, b, dy: (lambda dx, _, db: (dx, x.T @ dy, db))(
                    *_linear_grads(x, W, b, dy)
                ),
            ),
        ],
        quiet=quiet,
    )


# --------------------------------------------------------------------------- softmax + CE


def _ce_grad(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torch.autograd's d F.cross_entropy(z, y) / d z, (B, C)."""
    z = z.detach().clone().requires_grad_()
    return torch.autograd.grad(F.cross_entropy(z, y), z)[0]


def softmax_ce_grad(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(z (B, C) logits, y (B,) class ids) -> d mean cross-entropy / d z (B, C)."""
    g = torch.Generator().manual_seed(4)
    return check(
        fn,
        reference=_ce_grad,
        cases=[
            case(
                torch.randn(4, 6, generator=g),
                torch.tensor([5, 0, 2, 2]),
                label="batch 4, 6 classes",
            ),
            case(torch.randn(1, 3, generator=g), torch.tensor([1]), label="batch 1"),
            case(
                torch.tensor([[30.0, -30.0, 0.0], [0.0, 0.0, 0.0]]),
                torch.tensor([0, 2]),
                label="a confident row and a uniform row",
            ),
        ],
        mistakes=[
            mistake(
                "forgetting the mean over the batch",
                "F.cross_entropy averages over the batch, so every row of p - y is divided by B",
                lambda z, y: _ce_grad(z, y) * z.shape[0],
            ),
            mistake(
                "the sign flipped",
                "L = -log p_t: the gradient is p - y (push the true logit UP by lowering the "
                "loss), not y - p",
                lambda z, y: -_ce_grad(z, y),
            ),
        ],
        quiet=quiet,
    )
