"""course_lib.norms against PyTorch: layer norm and RMS norm, forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import norms as N

F32 = dict(rtol=1e-5, atol=1e-6)


def _grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(out, inputs, g)


@pytest.mark.parametrize("shape", [(1, 1, 5), (3, 7), (2, 1, 9), (4, 3, 2, 6), (2, 3, 2)])
@pytest.mark.parametrize("eps", [1e-5, 1e-6, 0.5])
def test_rms_norm_equals_torch_forward_and_backward(shape, eps):
    """eps passed explicitly on both sides: nn.RMSNorm's default (None) is the dtype's machine
    epsilon, not 1e-5; a large eps makes its place (inside the root) matter."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    ref = nn.RMSNorm(shape[-1], eps=eps)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(shape[-1], generator=g))
    ours = N.RMSNorm(shape[-1], eps=eps)
    ours.load_state_dict(ref.state_dict())  # the same one parameter, by the same name
    fused = N.RMSNorm(shape[-1], eps=eps, fused=True)
    fused.load_state_dict(ref.state_dict())
    want = ref(x)
    want_grads = _grads(want, (x, ref.weight))
    for module in (ours, fused):
        got = module(x)
        torch.testing.assert_close(got, want, **F32)
        for a, b in zip(_grads(got, (x, module.weight)), want_grads, strict=True):
            torch.testing.assert_close(a, b, **F32)
    by_hand = N.rms_norm(x, ref.weight, eps)
    torch.testing.assert_close(by_hand, F.rms_norm(x, (shape[-1],), ref.weight, eps), **F32)


def test_rms_norm_non_contiguous_and_scale_free():
    x = torch.randn(6, 4).t()  # (4, 6), not contiguous
    assert not x.is_contiguous()
    torch.testing.assert_close(N.rms_norm(x, eps=1e-6), F.rms_norm(x, (6,), eps=1e-6), **F32)
    # no mean is subtracted: a vector keeps its direction, and its rms becomes ~1
    y = N.rms_norm(3.0 * x, eps=1e-6)
    torch.testing.assert_close(y, N.rms_norm(x, eps=1e-6), **F32)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4), rtol=1e-4, atol=1e-5)
    cos = F.cosine_similarity(y, x, dim=-1)
    torch.testing.assert_close(cos, torch.ones(4), **F32)


def test_layer_norm_lives_here_and_equals_torch():
    x = torch.randn(2, 3, 8, requires_grad=True)
    w, b = torch.randn(8, requires_grad=True), torch.randn(8, requires_grad=True)
    ours, ref = N.layer_norm(x, w, b, 1e-5), F.layer_norm(x, (8,), w, b, 1e-5)
    torch.testing.assert_close(ours, ref, **F32)
    for a, c in zip(_grads(ours, (x, w, b)), _grads(ref, (x, w, b)), strict=True):
        torch.testing.assert_close(a, c, **F32)


def test_make_norm_and_parameter_counts():
    for kind, bias in [("layer", True), ("layer", False), ("rms", True), ("rms", False)]:
        norm = N.make_norm(kind, 10, bias=bias)
        n = sum(p.numel() for p in norm.parameters())
        assert n == N.norm_parameters(kind, 10, bias)
    assert N.norm_parameters("layer", 10) == 20 and N.norm_parameters("rms", 10) == 10
    assert isinstance(N.make_norm("rms", 4), N.RMSNorm)
    assert N.make_norm("layer", 4, fused=True).fused


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"norm must be one of \['layer', 'rms'\], got 'batch'"):
        N.make_norm("batch", 4)
    with pytest.raises(ValueError, match="norm must be one of"):
        N.norm_parameters("scale", 4)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        N.rms_norm(torch.randn(2, 4), torch.ones(3))
    with pytest.raises(ValueError, match="d_model must be a positive integer, got 0"):
        N.RMSNorm(0)
    with pytest.raises(TypeError, match="eps must be a positive number, got str"):
        N.RMSNorm(4, eps="1e-5")
    with pytest.raises(ValueError, match="eps must be a positive number, got 0"):
        N.RMSNorm(4, eps=0)
