"""course_lib.autograd against PyTorch: the Value engine, gradcheck, clip_grad_norm_, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from exercise_helpers import learner
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import autograd as A
from course_lib.autograd import Value
from course_lib.exercises import nb06

F64 = dict(rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- the engine

UNARY = ["tanh", "exp", "relu", "neg", "square", "log_abs"]
BINARY = ["+", "-", "*", "/"]


def _apply(op: str, a, b, lib):
    """One operation on Values (lib=None) or on float64 tensors (lib=torch)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / (b * b + 1.0)  # keep the denominator away from 0
    if op == "tanh":
        return a.tanh()
    if op == "exp":
        return (a.tanh() * 2.0).exp()  # bounded, so no overflow after a few layers
    if op == "relu":
        return a.relu()
    if op == "neg":
        return -a
    if op == "square":
        return a**2
    if op == "log_abs":
        return (a * a + 0.5).log()
    raise AssertionError(op)


program = st.lists(
    st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 10), st.integers(0, 10)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(-2.0, 2.0, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
        min_size=1,
        max_size=4,
    ),
    prog=program,
)
def test_engine_matches_torch_autograd_on_random_expressions(values, prog):
    ours = [Value(v) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    nodes_o, nodes_t = list(ours), list(theirs)
    for op, i, j in prog:
        a_o, b_o = nodes_o[i % len(nodes_o)], nodes_o[j % len(nodes_o)]
        a_t, b_t = nodes_t[i % len(nodes_t)], nodes_t[j % len(nodes_t)]
        nodes_o.append(_apply(op, a_o, b_o, None))
        nodes_t.append(_apply(op, a_t, b_t, torch))
    out_o, out_t = nodes_o[-1], nodes_t[-1]
    assert math.isclose(out_o.data, out_t.item(), rel_tol=1e-12, abs_tol=1e-12)
    out_o.backward()
    grads = torch.autograd.grad(out_t, theirs, allow_unused=True)
    for v, g in zip(ours, grads, strict=True):
        expected = 0.0 if g is None else g.item()
        assert math.isclose(v.grad, expected, rel_tol=1e-9, abs_tol=1e-12), (v.grad, expected)


def test_every_operation_and_its_reversed_form():
    a, b = Value(1.5), Value(-0.7)
    ta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    out = (
        2 + a - 3 * b + (1 / a) - (4 - b) + a / b + b**3 + a**0.5 + a.log() + b.exp() + b.relu()
    ) * a.tanh()
    t_out = (
        2 + ta - 3 * tb + (1 / ta) - (4 - tb) + ta / tb + tb**3 + ta**0.5 + ta.log() + tb.exp()
    ) * ta.tanh()  # tb.relu() is 0
    out.backward()
    ga, gb = torch.autograd.grad(t_out, (ta, tb))
    assert math.isclose(out.data, t_out.item(), rel_tol=1e-12)
    assert math.isclose(a.grad, ga.item(), rel_tol=1e-12)
    assert math.isclose(b.grad, gb.item(), rel_tol=1e-12)


def test_a_value_used_twice_gets_gradient_from_both_uses():
    a = Value(3.0)
    out = a * a + a  # d/da = 2a + 1 = 7
    out.backward()
    assert a.grad == 7.0


def test_backward_accumulates_across_passes_like_torch():
    """A second backward without zero_grad adds the same gradient again, as in PyTorch."""
    a, b = Value(1.5), Value(-0.7)
    ta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    hidden = (a * b).tanh()  # an intermediate node, used twice below
    out = hidden * a + hidden.exp()
    t_hidden = (ta * tb).tanh()
    t_hidden.retain_grad()
    t_out = t_hidden * ta + t_hidden.exp()
    for _ in range(2):  # no zero_grad in between: both passes add into .grad
        out.backward()
        t_out.backward(retain_graph=True)
    for ours, theirs in ((a, ta), (b, tb), (hidden, t_hidden)):
        assert math.isclose(ours.grad, theirs.grad.item(), rel_tol=1e-12), (ours, theirs.grad)
    once_a = a.grad / 2
    A.zero_grad(A.topological_order(out))
    out.backward()  # after zero_grad: one pass's gradient again, no double counting
    assert math.isclose(a.grad, once_a, rel_tol=1e-12)
    assert math.isclose(b.grad, tb.grad.item() / 2, rel_tol=1e-12)


def test_two_losses_sharing_a_subgraph_add_their_gradients_like_torch():
    """loss1.backward(); loss2.backward() leaves d loss1 + d loss2 in the shared inputs."""
    a = Value(0.8)
    ta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    shared, t_shared = a * a, ta * ta
    loss1, t_loss1 = shared.tanh(), t_shared.tanh()
    loss2, t_loss2 = shared * 3.0 + a, t_shared * 3.0 + ta
    loss1.backward()
    loss2.backward()
    t_loss1.backward(retain_graph=True)
    t_loss2.backward()
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=1e-12)


def test_relu_at_zero_has_gradient_zero_like_torch():
    a = Value(0.0)
    a.relu().backward()
    t = torch.tensor(0.0, requires_grad=True)
    t.relu().backward()
    assert a.grad == t.grad.item() == 0.0


def test_topological_order_puts_inputs_first_and_survives_deep_graphs():
    a = Value(0.5, label="a")
    x = a
    for _ in range(5000):  # deeper than Python's recursion limit
        x = x * 1.0
    order = A.topological_order(x)
    assert order[0] is a and order[-1] is x
    assert len(order) == 1 + 2 * 5000  # a, and per step a constant and a product
    pos = {id(v): i for i, v in enumerate(order)}
    assert all(pos[id(c)] < pos[id(v)] for v in order for c in v._prev)
    x.backward()
    assert a.grad == 1.0


def test_graph_text_names_nodes_and_shows_gradients():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    d = c + 1
    d.label = "d"
    d.backward()
    text = A.graph_text(d)
    lines = [" ".join(line.split()) for line in text.splitlines()]  # padding collapsed
    assert lines[0].startswith("a = input") and "grad=-3.0000" in lines[0]
    assert lines[1].startswith("b = input") and "grad=+2.0000" in lines[1]
    assert lines[2].startswith("c = *(a, b)") and "data=-6.0000" in lines[2]
    assert "constant" in lines[3]
    assert lines[-1].startswith("d = +(c, n3)")


def test_zero_grad():
    a = Value(1.0)
    (a * 2).backward()
    A.zero_grad([a])
    assert a.grad == 0.0


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: Value("1"), TypeError, "data must be an int or float, got str"),
        (lambda: Value(True), TypeError, "data must be an int or float, got bool"),
        (lambda: Value(1.0) + "a", TypeError, "other must be a Value, int or float, got str"),
        (lambda: Value(2.0) ** Value(2.0), TypeError, "exponent must be an int or float"),
        (lambda: Value(0.0).log(), ValueError, "log needs a positive Value, got 0.0"),
        (lambda: Value(-2.0) ** 0.5, ValueError, "negative base"),
        (lambda: Value(1.0) / 0, ZeroDivisionError, "division by a Value whose data is 0.0"),
        (lambda: Value(0.0) ** -1, ZeroDivisionError, "0.0 ** -1"),
        (lambda: A.topological_order(3.0), TypeError, "root must be a Value, got float"),
        (lambda: A.zero_grad([1.0]), TypeError, "values must hold Values, got float"),
    ],
)
def test_engine_bad_input_is_named(make, error, words):
    with pytest.raises(error, match=words.replace("*", r"\*")):
        make()


# --------------------------------------------------------------------------- gradcheck


class _WrongTanh(torch.autograd.Function):
    """tanh with a backward that forgets the square: 1 - tanh(x), not 1 - tanh(x)^2."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y)


def _inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]


FUNCTIONS = {
    "mlp": (lambda x, w, b: torch.tanh(x @ w + b).sum(-1), [(3, 5), (5, 4), (4,)]),
    "softmax": (lambda z: torch.softmax(z, dim=-1), [(2, 7)]),
    "cross_entropy": (
        lambda z: torch.nn.functional.cross_entropy(z, torch.tensor([1, 0, 4])),
        [(3, 5)],
    ),
    "one_element": (lambda x: (x.exp() * 3).log(), [(1,)]),
    "unused_input": (lambda x, y: x * 2, [(2,), (3,)]),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradcheck_agrees_with_torch_on_correct_gradients(name):
    fn, shapes = FUNCTIONS[name]
    inputs = _inputs(*shapes)
    assert A.gradcheck(fn, inputs) is True
    assert torch.autograd.gradcheck(fn, inputs, raise_exception=False) is True


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 5)])
def test_gradcheck_agrees_with_torch_on_a_wrong_gradient(shape):
    (x,) = _inputs(shape, seed=1)
    assert A.gradcheck(_WrongTanh.apply, [x]) is False
    assert torch.autograd.gradcheck(_WrongTanh.apply, [x], raise_exception=False) is False


def test_numerical_jacobian_matches_torch_jacobian():
    fn, shapes = FUNCTIONS["mlp"]
    inputs = _inputs(*shapes, seed=3)
    ours = A.numerical_jacobian(fn, inputs)
    theirs = torch.autograd.functional.jacobian(fn, tuple(inputs))
    for j, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(j, t.reshape(j.shape), **F64)
    assert all(not x.grad_fn and x.grad is None for x in inputs)  # inputs left untouched


def test_gradcheck_catches_a_gradient_off_by_a_tiny_amount():
    # rtol 1e-7 is tight: a gradient wrong by one part in 1e4 is caught.
    class Slightly(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x * (1 + 1e-4)

    (x,) = _inputs((4,), seed=2)
    assert A.gradcheck(Slightly.apply, [x]) is False


@pytest.mark.parametrize(
    "inputs, kwargs, error, words",
    [
        ([torch.randn(3, requires_grad=True)], {}, ValueError, "inputs\\[0\\] must be float64"),
        ([torch.randn(3, dtype=torch.float64)], {}, ValueError, "requires_grad=True"),
        ([], {}, ValueError, "at least one tensor"),
        ([[1.0]], {}, TypeError, "inputs\\[0\\] must be a torch.Tensor, got list"),
        (None, {"eps": 0.0}, ValueError, "eps must be a positive number"),
        (None, {"rtol": -1.0}, ValueError, "rtol must be a non-negative number"),
    ],
)
def test_gradcheck_bad_input_is_named(inputs, kwargs, error, words):
    if inputs is None:
        inputs = _inputs((2,))
    with pytest.raises(error, match=words):
        A.gradcheck(lambda *xs: xs[0] * 2, inputs, **kwargs)


# --------------------------------------------------------------------------- clipping


def _twin_params(shapes, scale, none_at=(), zero_at=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    ours, theirs = [], []
    for i, s in enumerate(shapes):
        w = torch.randn(*s, generator=g)
        grad = None if i in none_at else torch.randn(*s, generator=g) * scale
        if grad is not None and i in zero_at:
            grad.zero_()
        for group in (ours, theirs):
            p = torch.nn.Parameter(w.clone())
            p.grad = None if grad is None else grad.clone()
            group.append(p)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("scale", [10.0, 0.01])  # clipped, and left alone
@pytest.mark.parametrize(
    "shapes, none_at, zero_at",
    [
        ([(3, 5), (5,), (1, 1)], (), ()),
        ([(7,), (2, 3, 4)], (0,), ()),  # a None grad is skipped
        ([(4, 4), (3,)], (), (0, 1)),  # all gradients zero
        ([(1,)], (), ()),
    ],
)
def test_clip_grad_norm_equals_torch(norm_type, scale, shapes, none_at, zero_at):
    ours, theirs = _twin_params(shapes, scale, none_at, zero_at)
    total = A.clip_grad_norm_(ours, 1.0, norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    torch.testing.assert_close(total, total_ref, rtol=1e-5, atol=1e-6)
    for p, q in zip(ours, theirs, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_bounds_the_norm_and_keeps_the_direction():
    ours, _ = _twin_params([(10,), (6, 2)], scale=50.0)
    before = torch.cat([p.grad.flatten() for p in ours])
    total = A.clip_grad_norm_(ours, 2.5)
    after = torch.cat([p.grad.flatten() for p in ours])
    torch.testing.assert_close(total, before.norm())
    assert after.norm().item() == pytest.approx(2.5, rel=1e-5)
    torch.testing.assert_close(after / after.norm(), before / before.norm())


def test_clip_grad_norm_single_tensor_and_no_grads():
    p = torch.nn.Parameter(torch.ones(3))
    assert A.clip_grad_norm_(p, 1.0).item() == 0.0  # no grad at all: norm 0, like torch
    p.grad = torch.full((3,), 4.0)
    q = torch.nn.Parameter(torch.ones(3))
    q.grad = torch.full((3,), 4.0)
    torch.testing.assert_close(A.clip_grad_norm_(p, 1.0), torch.nn.utils.clip_grad_norm_(q, 1.0))
    torch.testing.assert_close(p.grad, q.grad)


def test_clip_grad_norm_nonfinite():
    ours, theirs = _twin_params([(3,)], scale=1.0)
    ours[0].grad[0] = float("inf")
    theirs[0].grad[0] = float("inf")
    with pytest.raises(RuntimeError, match="error_if_nonfinite=False"):
        A.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    assert torch.isinf(A.clip_grad_norm_(ours, 1.0))


@pytest.mark.parametrize(
    "params, kwargs, error, words",
    [
        ([1.0], {"max_norm": 1.0}, TypeError, "parameters\\[0\\] must be a torch.Tensor"),
        (None, {"max_norm": -1.0}, ValueError, "max_norm must be >= 0, got -1.0"),
        (None, {"max_norm": "1"}, TypeError, "max_norm must be a number, got str"),
        (None, {"max_norm": 1.0, "norm_type": 0.0}, ValueError, "norm_type must be > 0"),
    ],
)
def test_clip_grad_norm_bad_input_is_named(params, kwargs, error, words):
    if params is None:
        params, _ = _twin_params([(2,)], scale=1.0)
    with pytest.raises(error, match=words):
        A.clip_grad_norm_(params, **kwargs)


# --------------------------------------------------------------------------- exercises
# The answer key (course_lib.exercises.nb06) is what notebook 06's check cells call: right
# answers pass and each named mistake is recognised, tried here without running the notebook.


class RightValue:
    """A learner's engine as the exercise asks for it (type(self) so that a subclass below,
    one bug each, builds its own kind of Value)."""

    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        self._backward = lambda: None

    def _wrap(self, other):
        return other if isinstance(other, RightValue) else type(self)(other)

    def __add__(self, other):
        other = self._wrap(other)
        out = type(self)(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._wrap(other)
        out = type(self)(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = type(self)(t, (self,))

        def _backward():
            self.grad += (1 - t**2) * out.grad

        out._backward = _backward
        return out

    def topological_order(self):
        order, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    visit(child)
                order.append(v)

        visit(self)
        return order

    def backward(self):
        order = self.topological_order()
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


class AssignedEverywhere(RightValue):
    def __add__(self, other):
        other = self._wrap(other)
        out = type(self)(self.data + other.data, (self, other))

        def _backward():
            self.grad = out.grad
            other.grad = out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._wrap(other)
        out = type(self)(self.data * other.data, (self, other))

        def _backward():
            self.grad = other.data * out.grad
            other.grad = self.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = type(self)(t, (self,))

        def _backward():
            self.grad = (1 - t**2) * out.grad

        out._backward = _backward
        return out


class AssignedInAdd(RightValue):
    __add__ = AssignedEverywhere.__add__


class AssignedInMul(RightValue):
    __mul__ = AssignedEverywhere.__mul__


class AssignedInTanh(RightValue):
    tanh = AssignedEverywhere.tanh


class BreadthFirst(RightValue):
    def backward(self):
        self.grad = 1.0
        queue, seen = [self], {self}
        while queue:
            v = queue.pop(0)
            v._backward()
            for child in v._prev:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)


class PreorderRecursion(RightValue):
    def backward(self):
        self.grad = 1.0
        seen = set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                v._backward()
                for child in v._prev:
                    visit(child)

        visit(self)


class PreorderStack(RightValue):
    def backward(self):
        self.grad = 1.0
        stack, seen = [self], set()
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            v._backward()
            stack.extend(v._prev)


class EveryPath(RightValue):
    def backward(self):
        self.grad = 1.0
        self._walk()

    def _walk(self):
        self._backward()
        for child in self._prev:
            child._walk()


class NotReversed(RightValue):
    def backward(self):
        self.grad = 1.0
        for v in self.topological_order():
            v._backward()


class Unseeded(RightValue):
    def backward(self):
        for v in reversed(self.topological_order()):
            v._backward()


class TanhOfInput(RightValue):
    def tanh(self):
        out = type(self)(math.tanh(self.data), (self,))

        def _backward():
            self.grad += (1 - self.data**2) * out.grad

        out._backward = _backward
        return out


class Unswapped(RightValue):
    def __mul__(self, other):
        other = self._wrap(other)
        out = type(self)(self.data * other.data, (self, other))

        def _backward():
            self.grad += self.data * out.grad
            other.grad += other.data * out.grad

        out._backward = _backward
        return out


def test_exercise_value_engine_right_answer_passes():
    assert nb06.value_engine(RightValue, quiet=True).message == (
        "RightValue: all 7 cases pass. Well done!"
    )
    # the key's own engine (its mistakes' base) is right too
    assert nb06.value_engine(nb06._Engine, quiet=True).passed


def test_exercise_value_engine_stub_is_not_yet():
    class Stub(RightValue):
        def __mul__(self, other):
            raise NotImplementedError("Exercise: replace this line with your code")

    verdict = nb06.value_engine(Stub, quiet=True)
    assert verdict.status == "not yet" and "Stub: not yet." in verdict.message


@pytest.mark.parametrize(
    "cls, name",
    [
        (AssignedEverywhere, "gradients assigned, not accumulated (= instead of +=)"),
        (AssignedInAdd, "gradients assigned, not accumulated (= instead of +=)"),
        (AssignedInMul, "gradients assigned, not accumulated (= instead of +=)"),
        (AssignedInTanh, "gradients assigned, not accumulated (= instead of +=)"),
        (BreadthFirst, "backward in visiting order, not topological order"),
        (PreorderRecursion, "backward in visiting order, not topological order"),
        (PreorderStack, "backward in visiting order, not topological order"),
        (EveryPath, "the graph walked once per path"),
        (NotReversed, "the topological order walked forwards"),
        (Unseeded, "the root's gradient not seeded with 1"),
        (TanhOfInput, "tanh's slope taken at its input"),
        (Unswapped, "the product rule with the inputs not swapped"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_exercise_value_engine_wrong_answers_are_named(cls, name):
    verdict = nb06.value_engine(cls, quiet=True)
    assert verdict.status == "wrong"
    assert f"hint: this looks like {name}:" in verdict.message, verdict.message


def test_exercise_value_engine_trains_the_mlp_against_torch():
    # right on every small expression, wrong once inputs are fractions: the MLP case catches it
    class WholeNumbers(RightValue):
        def _wrap(self, other):
            return other if isinstance(other, RightValue) else type(self)(int(other))

    message = nb06.value_engine(WholeNumbers, quiet=True).message
    assert "6 of 7 cases pass; case 'an MLP 2-5-3 on 18 spiral points" in message
    assert "hint: work this case through by hand" in message  # no named mistake fits


def test_exercise_value_engine_errors_quote_the_learners_line():
    class Typo(RightValue):
        def tanh(self):
            out = type(self)(math.tanh(self.data), (self,))

            def _backward():
                self.grad += (1 - out.dat**2) * out.grad

            out._backward = _backward
            return out

    class NoReturn(RightValue):
        def __mul__(self, other):
            RightValue.__mul__(self, other)

    typo = nb06.value_engine(Typo, quiet=True).message
    assert "raised AttributeError: 'Typo' object has no attribute 'dat'" in typo
    assert "(in _backward: `self.grad += (1 - out.dat**2) * out.grad`)" in typo
    no_return = nb06.value_engine(NoReturn, quiet=True).message
    assert "raised TypeError: a * b gave NoneType, not a NoReturn" in no_return


def test_exercise_value_engine_bad_input():
    with pytest.raises(TypeError, match="cls must be your Value class itself, got RightValue"):
        nb06.value_engine(RightValue(1.0))


def test_exercise_linear_backward_wrong_answers_are_named():
    sig = "def linear_backward(x, W, b, dy):"
    right, transposed_w, mean_b, swapped_w = (
        nb06.linear_backward(learner(sig, body), quiet=True).message
        for body in [
            "return dy @ W, dy.T @ x, dy.sum(0)",
            "return dy @ W.T, dy.T @ x, dy.sum(0)",
            "return dy @ W, dy.T @ x, dy.mean(0)",
            "return dy @ W, x.T @ dy, dy.sum(0)",
        ]
    )
    assert right == "linear_backward: all 3 cases pass. Well done!"
    assert "hint: this looks like dL/dx through W transposed" in transposed_w
    assert "hint: this looks like dL/db as a mean" in mean_b
    assert "hint: this looks like dL/dW transposed" in swapped_w


def test_exercise_softmax_ce_grad_wrong_answers_are_named():
    sig = "def softmax_ce_grad(z, y):"
    right, no_mean, flipped = (
        nb06.softmax_ce_grad(learner(sig, body), quiet=True).message
        for body in [
            "p = torch.softmax(z, dim=-1)\n"
            "return (p - F.one_hot(y, z.shape[-1]).to(z.dtype)) / z.shape[0]",
            "p = torch.softmax(z, dim=-1)\nreturn p - F.one_hot(y, z.shape[-1]).to(z.dtype)",
            "p = torch.softmax(z, dim=-1)\n"
            "return (F.one_hot(y, z.shape[-1]).to(z.dtype) - p) / z.shape[0]",
        ]
    )
    assert right == "softmax_ce_grad: all 3 cases pass. Well done!"
    assert "hint: this looks like forgetting the mean over the batch" in no_mean
    assert "hint: this looks like the sign flipped" in flipped
