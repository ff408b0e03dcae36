"""course_lib.autograd against PyTorch: the Value engine, gradcheck, clip_grad_norm_, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import notebooks as nbtools
from course_lib import autograd as A
from course_lib.autograd import Value

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_backpropagation.ipynb"
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


# --------------------------------------------------------------------------- the notebook


@pytest.fixture(scope="module")
def verdicts():
    """Every exercise body below, tried in ONE execution of the notebook."""
    return nbtools.run_exercises(
        NOTEBOOK,
        {
            "linear_backward": [
                "return dy @ W, dy.T @ x, dy.sum(0)",
                "return dy @ W.T, dy.T @ x, dy.sum(0)",
                "return dy @ W, dy.T @ x, dy.mean(0)",
                "return dy @ W, x.T @ dy, dy.sum(0)",
            ],
            "softmax_ce_grad": [
                "p = torch.softmax(z, dim=-1)\n"
                "return (p - F.one_hot(y, z.shape[-1]).to(z.dtype)) / z.shape[0]",
                "p = torch.softmax(z, dim=-1)\nreturn p - F.one_hot(y, z.shape[-1]).to(z.dtype)",
                "p = torch.softmax(z, dim=-1)\n"
                "return (F.one_hot(y, z.shape[-1]).to(z.dtype) - p) / z.shape[0]",
            ],
        },
    )


def test_exercise_linear_backward_wrong_answers_are_named(verdicts):
    right, transposed_w, mean_b, swapped_w = verdicts["linear_backward"]
    assert right == "linear_backward: all 3 cases pass. Well done!\n"
    assert "hint: this looks like dL/dx through W transposed" in transposed_w
    assert "hint: this looks like dL/db as a mean" in mean_b
    assert "hint: this looks like dL/dW transposed" in swapped_w


def test_exercise_softmax_ce_grad_wrong_answers_are_named(verdicts):
    right, no_mean, flipped = verdicts["softmax_ce_grad"]
    assert right == "softmax_ce_grad: all 3 cases pass. Well done!\n"
    assert "hint: this looks like forgetting the mean over the batch" in no_mean
    assert "hint: this looks like the sign flipped" in flipped
