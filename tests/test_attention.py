"""course_lib.attention against PyTorch: forward and backward, masks, heads, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from course_lib import attention as A
from course_lib.exercises import nb03

F32 = dict(rtol=1e-5, atol=1e-6)


def _qkv(shape_q, t_k, d_v=None, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    *lead, t_q, d = shape_q
    d_v = d if d_v is None else d_v
    q = torch.randn(*lead, t_q, d, generator=g)
    k = torch.randn(*lead, t_k, d, generator=g)
    v = torch.randn(*lead, t_k, d_v, generator=g)
    return [x.requires_grad_(requires_grad) for x in (q, k, v)]


def _assert_same_forward_backward(ours_fn, ref_fn, inputs, seed=1):
    """ours_fn(*inputs) and ref_fn(*inputs): equal outputs and equal input gradients."""
    ours = ours_fn(*inputs)
    ref = ref_fn(*inputs)
    torch.testing.assert_close(ours, ref, **F32)
    g = torch.randn(ours.shape, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad(ours, inputs, g)
    grads_ref = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, **F32)


# --------------------------------------------------------------------------- the function

SHAPES = [
    # (q shape, T_k, d_v)
    ((1, 1, 1), 1, None),  # the smallest: batch 1, one token, width 1
    ((1, 7, 8), 7, None),  # batch 1, odd length
    ((3, 5, 4), 9, 6),  # cross-attention T_q != T_k, d_v != d
    ((2, 3, 5, 8), 11, None),  # with a head axis, odd lengths
    ((2, 1, 1, 16), 13, 3),  # a single query (generation step)
]


@pytest.mark.parametrize("shape_q, t_k, d_v", SHAPES)
@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa_equals_torch_without_mask(shape_q, t_k, d_v, scale):
    q, k, v = _qkv(shape_q, t_k, d_v)
    _assert_same_forward_backward(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, scale=scale)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=scale),
        [q, k, v],
    )


def _random_mask(shape, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) > 0.4
    mask[..., 0] = True  # every query row keeps one key (fully masked rows are tested below)
    return mask


@pytest.mark.parametrize("shape_q, t_k, d_v", SHAPES)
@pytest.mark.parametrize("kind", ["random", "broadcast", "causal"])
def test_sdpa_equals_torch_with_masks(shape_q, t_k, d_v, kind):
    q, k, v = _qkv(shape_q, t_k, d_v, seed=2)
    t_q = shape_q[-2]
    if kind == "random":
        mask = _random_mask((*shape_q[:-1], t_k), seed=3)  # the full score shape
    elif kind == "broadcast":
        mask = _random_mask((1, t_k), seed=4)  # one key mask for every query and batch
    else:
        mask = torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)
    _assert_same_forward_backward(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask=mask)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        [q, k, v],
    )


def test_sdpa_causal_mask_equals_is_causal():
    q, k, v = _qkv((2, 3, 9, 8), 9, seed=5)
    _assert_same_forward_backward(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask=A.causal_mask(9))[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [q, k, v],
    )


def test_sdpa_non_contiguous_inputs():
    g = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(2, 6, 3, 8, generator=g) for _ in range(3))  # (B, T, H, d)
    q, k, v = (x.transpose(1, 2).requires_grad_() for x in (q, k, v))  # (2, 3, 6, 8) views
    assert not q.is_contiguous()
    _assert_same_forward_backward(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        [q, k, v],
    )


def test_sdpa_weights_are_a_distribution_with_zeros_where_masked():
    q, k, v = _qkv((2, 4, 5, 8), 7, seed=7, requires_grad=False)
    mask = _random_mask((2, 4, 5, 7), seed=8)
    out, w = A.scaled_dot_product_attention(q, k, v, mask=mask)
    assert w.shape == (2, 4, 5, 7) and out.shape == (2, 4, 5, 8)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 5))
    assert torch.all(w[~mask] == 0)
    torch.testing.assert_close(out, w @ v, **F32)
    expected = torch.softmax(
        (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~mask, -math.inf), -1
    )
    torch.testing.assert_close(w, expected, **F32)


def test_sdpa_fully_masked_row_gives_zeros_not_nan():
    q, k, v = _qkv((1, 3, 4), 5, seed=9)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    out, w = A.scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.all(w[0, 1] == 0) and torch.all(out[0, 1] == 0)
    out.sum().backward()
    for x in (q, k, v):
        assert torch.isfinite(x.grad).all()
    assert torch.all(q.grad[0, 1] == 0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F32)


def test_sdpa_float64_gradcheck():
    q, k, v = (x.double() for x in _qkv((1, 3, 4), 5, seed=10, requires_grad=False))
    mask = _random_mask((3, 5), seed=11)
    for x in (q, k, v):
        x.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask=mask)[0], (q, k, v)
    )


@pytest.mark.parametrize(
    "shapes, mask, exc, message",
    [
        (((2, 3, 4), (2, 5, 6), (2, 5, 4)), None, ValueError, "share their last dimension"),
        (((2, 3, 4), (2, 5, 4), (2, 6, 4)), None, ValueError, "same length"),
        (((2, 3, 4), (2, 5, 4), (2, 5, 4)), torch.ones(3, 5), TypeError, "boolean"),
        (
            ((2, 3, 4), (2, 5, 4), (2, 5, 4)),
            torch.ones(2, 7, dtype=torch.bool),
            ValueError,
            r"mask shape \(2, 7\) does not broadcast to scores \(2, 3, 5\)",
        ),
    ],
)
def test_sdpa_bad_input(shapes, mask, exc, message):
    q, k, v = (torch.randn(s) for s in shapes)
    with pytest.raises(exc, match=message):
        A.scaled_dot_product_attention(q, k, v, mask=mask)


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("t", [1, 2, 7])
def test_causal_mask(t):
    m = A.causal_mask(t)
    assert m.dtype == torch.bool and m.shape == (t, t)
    i = torch.arange(t)
    assert torch.equal(m, i[None, :] <= i[:, None])
    # the opposite of what nn.Transformer's causal mask blocks
    blocked = nn.Transformer.generate_square_subsequent_mask(t) == -math.inf
    assert torch.equal(m, ~blocked)


@pytest.mark.parametrize("t", [0, -3])
def test_causal_mask_bad_length(t):
    with pytest.raises(ValueError, match=f"t must be a positive integer, got {t}"):
        A.causal_mask(t)


@pytest.mark.parametrize("t, shown", [(True, "bool True"), (2.0, "float 2.0"), ("4", "str '4'")])
def test_causal_mask_length_of_a_wrong_type(t, shown):
    with pytest.raises(TypeError, match=f"t must be an integer, got {shown}"):
        A.causal_mask(t)


def test_padding_mask():
    attn = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    m = A.padding_mask(attn)
    assert m.dtype == torch.bool and m.shape == (2, 1, 1, 4)
    assert torch.equal(m[:, 0, 0], attn.bool())
    # broadcasts to (B, H, T, T) scores and blocks exactly the padded keys
    full = m.expand(2, 3, 4, 4)
    assert torch.equal(full[1, 2, 3], torch.tensor([True, False, False, False]))
    assert torch.equal(A.padding_mask(attn.bool()), m)


def test_padding_mask_bad_input():
    with pytest.raises(ValueError, match=r"attention_mask must be \(batch, seq\)"):
        A.padding_mask(torch.ones(4))
    with pytest.raises(TypeError, match="attention_mask must be a tensor"):
        A.padding_mask([[1, 1, 0]])


# --------------------------------------------------------------------------- heads


@given(
    b=st.integers(1, 3),
    t=st.integers(1, 9),
    h=st.integers(1, 5),
    dh=st.integers(1, 6),
)
def test_split_merge_round_trip_and_layout(b, t, h, dh):
    x = torch.randn(b, t, h * dh)
    heads = A.split_heads(x, h)
    assert heads.shape == (b, h, t, dh)
    for j in range(h):  # head j holds the j-th contiguous block of columns
        torch.testing.assert_close(heads[:, j], x[..., j * dh : (j + 1) * dh], rtol=0, atol=0)
    torch.testing.assert_close(A.merge_heads(heads), x, rtol=0, atol=0)
    y = torch.randn(b, h, t, dh)
    torch.testing.assert_close(A.split_heads(A.merge_heads(y), h), y, rtol=0, atol=0)


def test_split_heads_non_contiguous_input():
    x = torch.randn(5, 2, 12).transpose(0, 1)  # (2, 5, 12), not contiguous: .view would fail
    assert not x.is_contiguous()
    torch.testing.assert_close(
        A.split_heads(x, 3), A.split_heads(x.contiguous(), 3), rtol=0, atol=0
    )


@pytest.mark.parametrize(
    "shape, n_heads, error, message",
    [
        ((2, 5), 1, ValueError, r"x must be \(batch, seq, width\)"),
        ((2, 5, 10), 3, ValueError, "width 10 is not divisible by n_heads=3"),
        ((2, 5, 10), 0, ValueError, "n_heads must be a positive integer, got 0"),
        ((2, 5, 10), True, TypeError, "n_heads must be an integer, got bool True"),
        ((2, 5, 10), 2.0, TypeError, "n_heads must be an integer, got float 2.0"),
    ],
)
def test_split_heads_bad_input(shape, n_heads, error, message):
    with pytest.raises(error, match=message):
        A.split_heads(torch.randn(shape), n_heads)


def test_merge_heads_bad_input():
    with pytest.raises(ValueError, match=r"x must be \(batch, heads, seq, head_dim\)"):
        A.merge_heads(torch.randn(2, 3, 4))


# --------------------------------------------------------------------------- the module

MHA_CASES = [
    # (B, T_q, T_k, d_model, H, mask kind, bias)
    (1, 1, 1, 4, 1, "none", True),
    (1, 7, 7, 12, 3, "causal", True),
    (3, 5, 5, 16, 4, "padding", True),
    (2, 3, 9, 8, 2, "padding", True),  # cross-attention with a padded memory
    (2, 6, 11, 24, 6, "none", False),  # cross-attention, no biases
    (2, 4, 4, 6, 2, "both", True),  # padded and causal
]


def _mask_pair(kind, B, T_q, T_k, seed):
    """Our mask (True = may attend) and nn.MultiheadAttention's keywords (True = blocked)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T_k + 1, (B,), generator=g)
    attn = (torch.arange(T_k)[None, :] < lengths[:, None]).long()  # (B, T_k)
    if kind == "none":
        return None, {}
    if kind == "padding":
        return A.padding_mask(attn), dict(key_padding_mask=~attn.bool())
    if kind == "causal":
        return A.causal_mask(T_q), dict(attn_mask=~A.causal_mask(T_q))
    return (
        A.padding_mask(attn) & A.causal_mask(T_q),
        dict(key_padding_mask=~attn.bool(), attn_mask=~A.causal_mask(T_q)),
    )


@pytest.mark.parametrize("B, T_q, T_k, d_model, H, kind, bias", MHA_CASES)
def test_multihead_equals_torch_forward_and_backward(B, T_q, T_k, d_model, H, kind, bias):
    torch.manual_seed(B * 100 + T_q * 10 + T_k)
    ours = A.MultiHeadAttention(d_model, H, bias=bias)
    ref = A.to_torch_multihead(ours)
    x = torch.randn(B, T_q, d_model, requires_grad=True)
    kv = torch.randn(B, T_k, d_model, requires_grad=True) if T_k != T_q else None
    mask, kw = _mask_pair(kind, B, T_q, T_k, seed=T_k)
    mem = x if kv is None else kv

    y = ours(x, kv, mask=mask)
    y_ref, w_ref = ref(x, mem, mem, average_attn_weights=False, **kw)
    assert y.shape == (B, T_q, d_model)
    torch.testing.assert_close(y, y_ref, **F32)
    assert ours.last_weights.shape == (B, H, T_q, T_k)
    torch.testing.assert_close(ours.last_weights, w_ref, **F32)

    g = torch.randn_like(y)
    inputs = [x] if kv is None else [x, kv]
    p, pr = dict(ours.named_parameters()), dict(ref.named_parameters())
    n = len(inputs)
    all_ours = torch.autograd.grad(y, [*inputs, *p.values()], g)
    all_ref = torch.autograd.grad(y_ref, [*inputs, *pr.values()], g)
    for a, b in zip(all_ours[:n], all_ref[:n], strict=True):  # inputs
        torch.testing.assert_close(a, b, **F32)
    grads = dict(zip(p, all_ours[n:], strict=True))
    grads_ref = dict(zip(pr, all_ref[n:], strict=True))
    stacked = torch.cat([grads["q_proj.weight"], grads["k_proj.weight"], grads["v_proj.weight"]])
    torch.testing.assert_close(stacked, grads_ref["in_proj_weight"], **F32)
    torch.testing.assert_close(grads["out_proj.weight"], grads_ref["out_proj.weight"], **F32)
    if bias:
        stacked_b = torch.cat([grads["q_proj.bias"], grads["k_proj.bias"], grads["v_proj.bias"]])
        torch.testing.assert_close(stacked_b, grads_ref["in_proj_bias"], **F32)
        torch.testing.assert_close(grads["out_proj.bias"], grads_ref["out_proj.bias"], **F32)


@pytest.mark.parametrize("B, T_q, T_k, d_model, H, kind, bias", MHA_CASES)
def test_multihead_fast_equals_slow(B, T_q, T_k, d_model, H, kind, bias):
    torch.manual_seed(7)
    slow = A.MultiHeadAttention(d_model, H, bias=bias)
    fast = A.MultiHeadAttention(d_model, H, bias=bias, fast=True)
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(B, T_q, d_model)
    kv = torch.randn(B, T_k, d_model) if T_k != T_q else None
    mask, _ = _mask_pair(kind, B, T_q, T_k, seed=3)
    y_slow, y_fast = slow(x, kv, mask=mask), fast(x, kv, mask=mask)
    torch.testing.assert_close(y_fast, y_slow, **F32)
    g = torch.randn_like(y_slow)
    for a, b in zip(
        torch.autograd.grad(y_fast, list(fast.parameters()), g),
        torch.autograd.grad(y_slow, list(slow.parameters()), g),
        strict=True,
    ):
        torch.testing.assert_close(a, b, **F32)


def test_multihead_parameter_names_and_shapes():
    m = A.MultiHeadAttention(12, 3)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        f"{proj}.{kind}": (12, 12) if kind == "weight" else (12,)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj")
        for kind in ("weight", "bias")
    }
    assert m.last_weights is None
    assert len(list(A.MultiHeadAttention(12, 3, bias=False).parameters())) == 4


def test_multihead_dropout_only_in_training():
    torch.manual_seed(0)
    m = A.MultiHeadAttention(8, 2, dropout=0.5)
    plain = A.MultiHeadAttention(8, 2)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(2, 5, 8)
    m.eval()
    torch.testing.assert_close(m(x), plain(x), **F32)  # eval: no dropout
    m.train()
    torch.manual_seed(1)
    y = m(x)
    # the same computation by hand: dropout on the weights, rescaled by 1 / (1 - p)
    torch.manual_seed(1)
    v = A.split_heads(m.v_proj(x), 2)
    dropped = F.dropout(plain.last_weights, 0.5) @ v
    torch.testing.assert_close(y, m.out_proj(A.merge_heads(dropped)), **F32)
    assert not torch.allclose(y, plain(x))


def test_to_torch_multihead_bad_input():
    with pytest.raises(TypeError, match="mha must be a MultiHeadAttention"):
        A.to_torch_multihead(nn.Linear(4, 4))


# --------------------------------------------------------------------------- grouped-query

GQA_CASES = [
    # (B, T_q, T_k, d_model, H, H_kv, mask kind, bias)
    (1, 1, 1, 8, 2, 1, "none", True),  # multi-query, one position
    (2, 7, 7, 24, 6, 2, "causal", True),
    (3, 5, 5, 16, 4, 1, "both", False),  # multi-query, padded and causal
    (2, 3, 9, 24, 4, 2, "padding", True),  # cross-attention with a padded memory
    (1, 6, 6, 12, 3, 3, "causal", False),  # n_kv_heads = n_heads: plain multi-head
]


def _gqa_reference(mha, x, kv, mask, is_causal=False):
    """The same projections, then F.scaled_dot_product_attention(..., enable_gqa=True)."""
    kv = x if kv is None else kv
    q = A.split_heads(mha.q_proj(x), mha.n_heads)  # (B, H, T_q, d_head)
    k = A.split_heads(mha.k_proj(kv), mha.n_kv_heads)  # (B, H_kv, T_k, d_head)
    v = A.split_heads(mha.v_proj(kv), mha.n_kv_heads)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=True
    )
    return mha.out_proj(A.merge_heads(out))


@pytest.mark.parametrize("B, T_q, T_k, d_model, H, H_kv, kind, bias", GQA_CASES)
@pytest.mark.parametrize("fast", [False, True])
def test_grouped_query_equals_torch_enable_gqa_forward_and_backward(
    B, T_q, T_k, d_model, H, H_kv, kind, bias, fast
):
    torch.manual_seed(B * 100 + T_q * 10 + H_kv)
    mha = A.MultiHeadAttention(d_model, H, bias=bias, fast=fast, n_kv_heads=H_kv)
    head = d_model // H
    assert mha.k_proj.weight.shape == mha.v_proj.weight.shape == (H_kv * head, d_model)
    x = torch.randn(B, T_q, d_model, requires_grad=True)
    kv = torch.randn(B, T_k, d_model, requires_grad=True) if T_k != T_q else None
    mask, _ = _mask_pair(kind, B, T_q, T_k, seed=T_k)
    y, y_ref = mha(x, kv, mask=mask), _gqa_reference(mha, x, kv, mask)
    assert y.shape == (B, T_q, d_model)
    torch.testing.assert_close(y, y_ref, **F32)
    if not fast:
        assert mha.last_weights.shape == (B, H, T_q, T_k)  # one row of weights per query head
    g = torch.randn_like(y)
    wrt = [x, *([] if kv is None else [kv]), *mha.parameters()]
    for a, b in zip(
        torch.autograd.grad(y, wrt, g), torch.autograd.grad(y_ref, wrt, g), strict=True
    ):
        torch.testing.assert_close(a, b, **F32)


@pytest.mark.parametrize("fast", [False, True])
def test_grouped_query_is_causal_equals_torch(fast):
    torch.manual_seed(3)
    mha = A.MultiHeadAttention(16, 4, fast=fast, n_kv_heads=2)
    x = torch.randn(2, 6, 16)
    ref = _gqa_reference(mha, x, None, None, is_causal=True)
    torch.testing.assert_close(mha(x, is_causal=True), ref, **F32)


def test_grouped_query_shares_each_key_value_head_with_its_group():
    """Query heads 0, 1 read key/value head 0 and heads 2, 3 read head 1 (repeat_interleave,
    the order F.scaled_dot_product_attention uses), not 0, 1, 0, 1."""
    kv = torch.randn(2, 2, 5, 3)  # (B, H_kv, T, d_head)
    rep = A.repeat_kv(kv, 4)  # (B, 4, T, d_head)
    assert rep.shape == (2, 4, 5, 3)
    for h in range(4):
        assert torch.equal(rep[:, h], kv[:, h // 2])
    assert torch.equal(A.repeat_kv(kv, 2), kv)
    with pytest.raises(ValueError, match="n_heads=3 is not a multiple of the 2 key/value heads"):
        A.repeat_kv(kv, 3)
    with pytest.raises(ValueError, match="x must be"):
        A.repeat_kv(torch.randn(2, 5, 3), 4)


def test_grouped_query_parameters_and_defaults():
    full = A.MultiHeadAttention(12, 3)
    same = A.MultiHeadAttention(12, 3, n_kv_heads=3)
    assert full.n_kv_heads == 3 and same.state_dict().keys() == full.state_dict().keys()
    shapes = [p.shape for p in full.parameters()]
    assert [p.shape for p in same.parameters()] == shapes
    mqa = A.MultiHeadAttention(12, 3, n_kv_heads=1, bias=False)
    assert sum(p.numel() for p in mqa.parameters()) == 2 * 12 * 12 + 2 * 4 * 12
    with pytest.raises(ValueError, match="n_kv_heads=2 must divide n_heads=3"):
        A.MultiHeadAttention(12, 3, n_kv_heads=2)
    with pytest.raises(ValueError, match="n_kv_heads must be a positive integer, got 0"):
        A.MultiHeadAttention(12, 3, n_kv_heads=0)
    with pytest.raises(TypeError, match="n_kv_heads must be an integer, got float"):
        A.MultiHeadAttention(12, 3, n_kv_heads=1.0)
    with pytest.raises(ValueError, match="neither grouped key/value heads nor QK-norm"):
        A.to_torch_multihead(mqa)


def test_qk_norm_modules_apply_to_each_heads_queries_and_keys():
    """q_norm and k_norm (set by the GPT's block) act on (B, H, T, d_head) before the scores."""
    torch.manual_seed(4)
    mha = A.MultiHeadAttention(16, 4, n_kv_heads=2)
    x = torch.randn(2, 5, 16)
    plain = mha(x)
    mha.q_norm, mha.k_norm = nn.RMSNorm(4, eps=1e-5), nn.RMSNorm(4, eps=1e-5)
    assert [n for n, _ in mha.named_parameters()][-2:] == ["q_norm.weight", "k_norm.weight"]
    q = F.rms_norm(A.split_heads(mha.q_proj(x), 4), (4,), eps=1e-5)
    k = F.rms_norm(A.split_heads(mha.k_proj(x), 2), (4,), eps=1e-5)
    v = A.split_heads(mha.v_proj(x), 2)
    out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(mha(x), mha.out_proj(A.merge_heads(out)), **F32)
    assert not torch.allclose(mha(x), plain)
    all_heads = A.MultiHeadAttention(16, 4)  # all heads, but QK-norm: not PyTorch's module
    all_heads.q_norm, all_heads.k_norm = nn.RMSNorm(4), nn.RMSNorm(4)
    with pytest.raises(ValueError, match="QK-norm.*q_norm set"):
        A.to_torch_multihead(all_heads)


# --------------------------------------------------------------------------- memory


def test_score_bytes():
    assert A.score_bytes(2, 4, 256, 256) == 2 * 4 * 256 * 256 * 4
    assert A.score_bytes(1, 1, 3, 5, torch.bfloat16) == 30
    q, k = torch.randn(2, 3, 7, 4), torch.randn(2, 3, 9, 4)
    scores = q @ k.transpose(-2, -1)
    assert A.score_bytes(2, 3, 7, 9) == scores.numel() * scores.element_size()


def test_kv_cache_bytes():
    # 2 (keys and values) x layers x batch x key/value heads x positions x head width x bytes
    assert A.kv_cache_bytes(4, 8, 64, 1024) == 2 * 4 * 8 * 1024 * 64 * 2  # bfloat16 by default
    assert A.kv_cache_bytes(2, 1, 16, 10, batch=3, dtype=torch.float32) == 2 * 2 * 3 * 10 * 16 * 4
    # a real cache: the k and v tensors one layer stores, counted
    k = torch.zeros(3, 2, 10, 16)  # (B, H_kv, T, d_head)
    assert A.kv_cache_bytes(1, 2, 16, 10, batch=3, dtype=torch.float32) == 2 * k.nbytes
    full, grouped = A.kv_cache_bytes(32, 32, 128, 4096), A.kv_cache_bytes(32, 8, 128, 4096)
    assert full == 4 * grouped  # 8 key/value heads for 32 query heads: a quarter of the cache
    with pytest.raises(ValueError, match="n_kv_heads must be a positive integer, got 0"):
        A.kv_cache_bytes(2, 0, 16, 10)
    with pytest.raises(TypeError, match="seq_len must be an integer, got float"):
        A.kv_cache_bytes(2, 1, 16, 10.0)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        A.kv_cache_bytes(2, 1, 16, 10, dtype="bf16")


@pytest.mark.parametrize(
    "args, exc, message",
    [
        ((0, 1, 2, 2), ValueError, "batch must be a positive integer, got 0"),
        ((1, 1, 2.0, 2), TypeError, "t_q must be an integer, got float 2.0"),
        ((1, True, 2, 2), TypeError, "heads must be an integer, got bool True"),
        ((1, 1, 2, 2, "float32"), TypeError, "dtype must be a torch.dtype"),
    ],
)
def test_score_bytes_bad_input(args, exc, message):
    with pytest.raises(exc, match=message):
        A.score_bytes(*args)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (("16", 2), {}, TypeError, "d_model must be an integer, got str '16'"),
        ((16.0, 2), {}, TypeError, "d_model must be an integer, got float 16.0"),
        ((16, True), {}, TypeError, "n_heads must be an integer, got bool True"),
        ((0, 2), {}, ValueError, "d_model must be a positive integer, got 0"),
        ((16, -1), {}, ValueError, "n_heads must be a positive integer, got -1"),
        ((16, 3), {}, ValueError, "d_model=16 is not divisible by n_heads=3"),
        (
            (16, 2),
            dict(dropout="0.1"),
            TypeError,
            "dropout must be a number in \\[0, 1\\), got str",
        ),
        ((16, 2), dict(dropout=1.0), ValueError, "dropout must be in \\[0, 1\\), got 1.0"),
    ],
)
def test_multihead_attention_bad_sizes_are_named(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        A.MultiHeadAttention(*args, **kwargs)


def test_multihead_attention_takes_numpy_sizes():
    mha = A.MultiHeadAttention(np.int64(16), np.int32(2))
    assert (type(mha.d_model), type(mha.n_heads)) == (int, int)
    assert mha(torch.randn(2, 3, 16)).shape == (2, 3, 16)


@pytest.mark.parametrize("fast", [False, True])
def test_multihead_attention_wrong_input_width_is_named(fast):
    mha = A.MultiHeadAttention(16, 2, fast=fast)
    with pytest.raises(ValueError, match=r"x must be \(batch, seq, 16\), got shape \(2, 3, 8\)"):
        mha(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"x must be \(batch, seq, 16\), got shape \(3, 16\)"):
        mha(torch.randn(3, 16))
    with pytest.raises(ValueError, match=r"kv must be \(batch, seq, 16\), got shape \(2, 5, 12\)"):
        mha(torch.randn(2, 3, 16), kv=torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match="kv has batch 1, x has 2"):
        mha(torch.randn(2, 3, 16), kv=torch.randn(1, 5, 16))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        mha([[1.0] * 16])


# --------------------------------------------------------------------------- exercises
# The answer key (course_lib.exercises.nb03) is what notebook 03's check cells call: right
# answers pass and each named mistake is recognised, tried here without running the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


def test_exercise_causal_mask_wrong_answers_are_named():
    def right(t):
        return torch.ones(t, t, dtype=torch.bool).tril()

    def no_diagonal(t):
        return torch.ones(t, t, dtype=torch.bool).tril(-1)

    def upper(t):
        return torch.ones(t, t, dtype=torch.bool).triu()

    def inverted(t):
        return torch.ones(t, t).tril() == 0

    ok, diag, up, inv = _verdicts(nb03.make_causal_mask, right, no_diagonal, upper, inverted)
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like the diagonal left out" in diag
    assert "hint: this looks like the upper triangle" in up
    assert "hint: this looks like the mask inverted" in inv


def test_exercise_scaled_scores_wrong_answers_are_named():
    def right(q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])

    def unscaled(q, k):
        return q @ k.transpose(-2, -1)

    def by_d(q, k):
        return q @ k.transpose(-2, -1) / q.shape[-1]

    def by_keys(q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])

    ok, un, d, keys = _verdicts(nb03.scaled_scores, right, unscaled, by_d, by_keys)
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like no scaling" in un
    assert "hint: this looks like dividing by d" in d
    assert "hint: this looks like scaling by the number of keys" in keys


def test_exercise_to_heads_wrong_answers_are_named():
    def right(x, n_heads):
        b, t, d = x.shape
        return x.view(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)

    def no_transpose(x, n_heads):
        b, t, d = x.shape
        return x.reshape(b, n_heads, t, d // n_heads)

    def interleaved(x, n_heads):
        b, t, d = x.shape
        return x.view(b, t, d // n_heads, n_heads).permute(0, 3, 1, 2)

    ok, no_t, inter = _verdicts(nb03.to_heads, right, no_transpose, interleaved)
    assert ok == "right: all 4 cases pass. Well done!"
    assert "hint: this looks like a view without the transpose" in no_t
    assert "hint: this looks like interleaved heads" in inter


class Learner(nn.Module):
    """A learner's causal self-attention, right, written step by step; each subclass below
    redoes one step with one mistake."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split(self, y):  # (B, T, D) -> (B, H, T, D / H)
        b, t, d = y.shape
        return y.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def scores(self, q, k):  # (B, H, T, T)
        return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])

    def masked(self, scores):
        t = scores.shape[-1]
        return scores.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))

    def softmax(self, scores):
        return torch.softmax(scores, dim=-1)

    def merge(self, out):  # (B, H, T, dh) -> (B, T, H * dh)
        b, h, t, dh = out.shape
        return out.transpose(1, 2).reshape(b, t, h * dh)

    def forward(self, x):
        q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
        weights = self.softmax(self.masked(self.scores(q, k)))
        return self.out_proj(self.merge(weights @ v))


class Unscaled(Learner):
    def scores(self, q, k):
        return q @ k.transpose(-2, -1)


class ScaledByWidth(Learner):
    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(self.q_proj.in_features)


class NoMask(Learner):
    def masked(self, scores):
        return scores


class DiagonalMasked(Learner):  # off by one: triu(0) hides the diagonal too
    def masked(self, scores):
        t = scores.shape[-1]
        return scores.masked_fill(torch.ones(t, t).triu(0).bool(), float("-inf"))


class UpperKept(Learner):
    def masked(self, scores):
        t = scores.shape[-1]
        return scores.masked_fill(torch.ones(t, t).tril(-1).bool(), float("-inf"))


class SoftmaxOverQueries(Learner):
    def softmax(self, scores):
        return torch.softmax(scores, dim=2)


class SplitWithoutTranspose(Learner):
    def split(self, y):
        b, t, d = y.shape
        return y.reshape(b, self.n_heads, t, d // self.n_heads)


class MergedWithoutTranspose(Learner):
    def merge(self, out):
        b, h, t, dh = out.shape
        return out.reshape(b, t, h * dh)


class MergedInterleaved(Learner):
    def merge(self, out):
        b, h, t, dh = out.shape
        return out.permute(0, 2, 3, 1).reshape(b, t, h * dh)


def test_exercise_causal_self_attention_right_answer_passes():
    before = torch.random.get_rng_state()
    verdict = nb03.causal_self_attention(Learner, quiet=True)
    assert verdict.passed and verdict.message == "Learner: all 50 cases pass. Well done!"
    assert torch.equal(torch.random.get_rng_state(), before)  # the key draws from its own RNG

    class WithBuffer(Learner):  # a mask kept as a buffer (as nanoGPT does) is fine
        def __init__(self, d_model, n_heads):
            super().__init__(d_model, n_heads)
            self.register_buffer("future", torch.ones(16, 16, dtype=torch.bool).triu(1))

        def masked(self, scores):
            t = scores.shape[-1]
            return scores.masked_fill(self.future[:t, :t], float("-inf"))

    assert nb03.causal_self_attention(WithBuffer, quiet=True).passed


@pytest.mark.parametrize(
    "learner, name",
    [
        (Unscaled, "scores not scaled"),
        (ScaledByWidth, "scores scaled by sqrt(d_model)"),
        (NoMask, "no causal mask"),
        (DiagonalMasked, "the diagonal masked too"),
        (UpperKept, "the mask the wrong way round"),
        (SoftmaxOverQueries, "the softmax over the queries"),
        (SplitWithoutTranspose, "heads split without the transpose"),
        (MergedWithoutTranspose, "heads merged without the transpose"),
        (MergedInterleaved, "heads merged in the wrong order"),
    ],
)
def test_exercise_causal_self_attention_wrong_answers_are_named(learner, name):
    verdict = nb03.causal_self_attention(learner, quiet=True)
    assert verdict.status == "wrong"
    assert f"{learner.__name__}: 0 of 50 cases pass" in verdict.message
    assert f"hint: this looks like {name}:" in verdict.message


def test_exercise_causal_self_attention_checks_the_backward_pass():
    class DetachedWeights(Learner):  # the right output, but no gradient through the weights
        def softmax(self, scores):
            return torch.softmax(scores, dim=-1).detach()

    verdict = nb03.causal_self_attention(DetachedWeights, quiet=True)
    assert "DetachedWeights: 5 of 50 cases pass" in verdict.message  # every output is right
    assert "case '2 sequences of 5, 3 heads: x.grad' does not" in verdict.message

    class FrozenValueWeight(Learner):  # x.grad is right, v_proj.weight gets no gradient
        def forward(self, x):
            v = self.split(F.linear(x, self.v_proj.weight.detach(), self.v_proj.bias))
            q, k = self.split(self.q_proj(x)), self.split(self.k_proj(x))
            return self.out_proj(self.merge(self.softmax(self.masked(self.scores(q, k))) @ v))

    verdict = nb03.causal_self_attention(FrozenValueWeight, quiet=True)
    assert "case '2 sequences of 5, 3 heads: v_proj.weight.grad' does not" in verdict.message
    assert "raised ValueError: no gradient reached v_proj.weight" in verdict.message


def test_exercise_causal_self_attention_stub_wrong_names_and_errors():
    class Stub(nn.Module):  # the student version: the solution blocks raise
        def __init__(self, d_model, n_heads):
            super().__init__()
            raise NotImplementedError("Exercise: replace this line with your code")

    assert nb03.causal_self_attention(Stub, quiet=True).status == "not yet"

    class Fused(Learner):  # one fused q/k/v projection: the library's weights cannot load
        def __init__(self, d_model, n_heads):
            nn.Module.__init__(self)
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out_proj = nn.Linear(d_model, d_model)

    message = nb03.causal_self_attention(Fused, quiet=True).message
    assert "raised ValueError: the module's parameters are" in message
    assert "'qkv.weight'" in message and "q_proj, k_proj, v_proj and out_proj" in message

    class Crashes(Learner):  # an error in the learner's forward quotes the learner's line
        def forward(self, x):
            return self.split(self.q_proj(x)).view(7, -1)

    message = nb03.causal_self_attention(Crashes, quiet=True).message
    assert "raised RuntimeError" in message
    assert "(line 2 of forward: `return self.split(self.q_proj(x)).view(7, -1)`)" in message
    with pytest.raises(TypeError, match="cls must be your nn.Module class itself"):
        nb03.causal_self_attention(Learner(12, 3))
