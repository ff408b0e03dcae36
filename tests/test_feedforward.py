"""course_lib.feedforward: the plain MLP, the gated MLP (SwiGLU) against a case worked by hand
and against F.silu-based code, forward and backward; activations; parameter counts."""

import pytest
import torch
import torch.nn.functional as F

from course_lib import feedforward as FF

F32 = dict(rtol=1e-5, atol=1e-6)
F64 = dict(rtol=1e-7, atol=1e-12)

# A SwiGLU worked by hand: D = 2, d_ff = 2, one token x = (1, 2), no biases.
X = [1.0, 2.0]
W_GATE = [[1.0, 0.0], [0.0, -1.0]]  # gate = x W_gate^T = (1, -2)
W_UP = [[1.0, 1.0], [0.5, 1.0]]  # up = x W_up^T = (3, 2.5)
W_DOWN = [[1.0, 0.0], [1.0, 2.0]]
# silu(a) = a / (1 + e^-a): silu(1) = 0.7310585786300049, silu(-2) = -0.2384058440442351
# h = silu(gate) * up = (2.1931757358900147, -0.5960146101105878)
# out = h W_down^T = (h1, h1 + 2 h2)
OUT = [2.1931757358900147, 1.0011465156688391]
# d(out1 + out2)/dx = 2 dh1/dx + 2 dh2/dx, with silu'(a) = s(a) (1 + a (1 - s(a))), s = sigmoid:
# silu'(1) = 0.9276705118714869, silu'(-2) = -0.09078424878489547;
# dh1/dx = silu'(1)·3·(1, 0) + silu(1)·(1, 1); dh2/dx = silu'(-2)·2.5·(0, -1) + silu(-2)·(0.5, 1)
GRAD_X = [6.789734384444696, 1.439226713096017]


def _hand_case():
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return t([X]).requires_grad_(), t(W_GATE), t(W_UP), t(W_DOWN)


def test_swiglu_equals_the_case_worked_by_hand():
    x, wg, wu, wd = _hand_case()
    out = FF.swiglu(x, wg, wu, wd)  # (1, 2)
    torch.testing.assert_close(out, torch.tensor([OUT], dtype=torch.float64), **F64)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([GRAD_X], dtype=torch.float64), **F64)
    # the module, with those weights, gives the same numbers
    ffn = FF.GatedFeedForward(2, 2, activation="silu", bias=False).double()
    with torch.no_grad():
        ffn.gate_proj.weight.copy_(wg)
        ffn.up_proj.weight.copy_(wu)
        ffn.down_proj.weight.copy_(wd)
    x2 = x.detach().clone().requires_grad_()
    out2 = ffn(x2)
    torch.testing.assert_close(out2, torch.tensor([OUT], dtype=torch.float64), **F64)
    out2.sum().backward()
    torch.testing.assert_close(x2.grad, torch.tensor([GRAD_X], dtype=torch.float64), **F64)


def _silu_reference(x, ffn):
    """SwiGLU in F.silu and F.linear: down(silu(gate x) * up x)."""
    g, u, d = ffn.gate_proj, ffn.up_proj, ffn.down_proj
    return F.linear(F.silu(F.linear(x, g.weight, g.bias)) * F.linear(x, u.weight, u.bias),
                    d.weight, d.bias)  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "d_ff", "bias"),
    [((1, 1, 5), 7, True), ((3, 7, 6), 11, False), ((2, 9, 4), 3, True), ((1, 4, 3), 1, False)],
)
def test_gated_feed_forward_equals_f_silu_code_forward_and_backward(shape, d_ff, bias):
    torch.manual_seed(0)
    ffn = FF.GatedFeedForward(shape[-1], d_ff, activation="silu", bias=bias)
    x = torch.randn(*shape, requires_grad=True)
    params = [x, *ffn.parameters()]
    ours, ref = ffn(x), _silu_reference(x, ffn)
    torch.testing.assert_close(ours, ref, **F32)
    g = torch.randn(ours.shape)
    for a, b in zip(torch.autograd.grad(ours, params, g), torch.autograd.grad(ref, params, g),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, **F32)
    # a non-contiguous input
    xt = torch.randn(shape[-1], 5).t()
    torch.testing.assert_close(ffn(xt), _silu_reference(xt, ffn), **F32)
    # and the function by hand, with the module's weights (no biases)
    if not bias:
        w = (ffn.gate_proj.weight, ffn.up_proj.weight, ffn.down_proj.weight)
        torch.testing.assert_close(FF.swiglu(x, *w), ref, **F32)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("relu", F.relu),
        ("gelu", F.gelu),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
        ("silu", lambda x: x * torch.sigmoid(x)),
        ("relu2", lambda x: torch.where(x > 0, x * x, torch.zeros_like(x))),
    ],
)
def test_activations_equal_their_definitions(name, reference):
    x = torch.randn(4, 9, requires_grad=True)
    ours, ref = FF.ACTIVATIONS[name](x), reference(x)
    torch.testing.assert_close(ours, ref, **F32)
    g = torch.randn(4, 9)
    torch.testing.assert_close(torch.autograd.grad(ours, x, g)[0],
                               torch.autograd.grad(ref, x, g)[0], **F32)  # fmt: skip


@pytest.mark.parametrize("mlp", FF.MLPS)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_counts_by_formula(mlp, bias):
    ffn = FF.make_feed_forward(mlp, 6, 10, "silu", bias=bias)
    assert sum(p.numel() for p in ffn.parameters()) == FF.feed_forward_parameters(6, 10, mlp, bias)
    assert FF.feed_forward_parameters(6, 10) == 2 * 6 * 10 + 10 + 6  # the 2019 MLP, as before


def test_plain_feed_forward_keeps_its_names_and_function():
    ffn = FF.FeedForward(4, 8, "gelu")
    assert [n for n, _ in ffn.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                      "fc2.bias"]  # fmt: skip
    x = torch.randn(2, 3, 4)
    want = F.linear(F.gelu(F.linear(x, ffn.fc1.weight, ffn.fc1.bias)), ffn.fc2.weight, ffn.fc2.bias)
    torch.testing.assert_close(ffn(x), want, **F32)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"mlp must be one of \['plain', 'gated'\], got 'swish'"):
        FF.make_feed_forward("swish", 4, 8)
    with pytest.raises(ValueError, match="mlp must be one of"):
        FF.feed_forward_parameters(4, 8, "moe")
    with pytest.raises(ValueError, match="activation must be one of"):
        FF.GatedFeedForward(4, 8, activation="swish")
    with pytest.raises(ValueError, match="d_ff must be a positive integer, got 0"):
        FF.GatedFeedForward(4, 0)
    with pytest.raises(TypeError, match="d_model must be an integer, got str"):
        FF.GatedFeedForward("4", 8)
    with pytest.raises(ValueError, match="shapes do not chain"):
        FF.swiglu(torch.randn(2, 3), torch.randn(5, 3), torch.randn(5, 3), torch.randn(3, 4))
