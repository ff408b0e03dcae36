"""course_lib.transformer against PyTorch's layers: forward, backward, masks, configs, counts.

BERT (course_lib.bert) has its own file, test_bert.py."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generate as generate_module
from course_lib import transformer as T
from course_lib.attention import MultiHeadAttention
from course_lib.embeddings import rope_rotate
from course_lib.exercises import nb04

RTOL, ATOL = 1e-5, 1e-6


def close(a, b, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ layer norm


@pytest.mark.parametrize("shape", [(1, 1, 5), (3, 7), (2, 1, 9), (4, 3, 2, 6), (2, 3, 2)])
def test_layer_norm_matches_torch_forward_and_backward(shape):
    torch.manual_seed(0)
    d = shape[-1]
    x = (torch.randn(shape) * 3 + 1).requires_grad_()
    ours_mod, ref_mod = T.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
    with torch.no_grad():
        w, b = torch.randn(d), torch.randn(d)
        ours_mod.weight.copy_(w), ours_mod.bias.copy_(b)
        ref_mod.weight.copy_(w), ref_mod.bias.copy_(b)
    g = torch.randn(shape)
    ours, ref = ours_mod(x), ref_mod(x)
    close(ours, ref)
    go = torch.autograd.grad(ours, (x, ours_mod.weight, ours_mod.bias), g)
    gr = torch.autograd.grad(ref, (x, ref_mod.weight, ref_mod.bias), g)
    for a, b in zip(go, gr, strict=True):
        close(a, b, atol=1e-5)


def test_layer_norm_non_contiguous_and_constant_rows():
    x = torch.randn(6, 4).t()  # (4, 6), non-contiguous
    close(T.layer_norm(x), F.layer_norm(x, (6,)))
    const = torch.full((2, 5), 3.0)
    close(T.layer_norm(const), F.layer_norm(const, (5,)))  # variance 0: eps keeps it finite


def test_layer_norm_bad_weight():
    with pytest.raises(ValueError, match="weight must have shape \\(4,\\)"):
        T.layer_norm(torch.randn(2, 4), torch.ones(3))
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        T.LayerNorm(0)


# ------------------------------------------------------------------ blocks vs torch


def _grads(module, x, extra=()):
    params = [p for p in module.parameters()]
    return torch.autograd.grad(module(x, *extra).pow(2).sum(), [x, *params], allow_unused=True)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_equals_torch(norm_first, activation):
    torch.manual_seed(1)
    d, h, ff = 12, 3, 20
    ref = nn.TransformerEncoderLayer(
        d, h, ff, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    )
    ours = T.block_from_torch(ref)
    x = torch.randn(2, 5, d, requires_grad=True)
    close(ours(x), ref(x), atol=1e-5)
    # gradients of the input and of matching parameters
    gx_ours = torch.autograd.grad(ours(x).pow(2).sum(), x)[0]
    gx_ref = torch.autograd.grad(ref(x).pow(2).sum(), x)[0]
    close(gx_ours, gx_ref, atol=1e-5)
    g_ours = torch.autograd.grad(ours(x).pow(2).sum(), ours.ffn.fc1.weight)[0]
    g_ref = torch.autograd.grad(ref(x).pow(2).sum(), ref.linear1.weight)[0]
    close(g_ours, g_ref, atol=1e-5)
    g_ours = torch.autograd.grad(ours(x).pow(2).sum(), ours.attn.q_proj.weight)[0]
    g_ref = torch.autograd.grad(ref(x).pow(2).sum(), ref.self_attn.in_proj_weight)[0][:d]
    close(g_ours, g_ref, atol=1e-5)


def test_encoder_block_padding_mask_batch_one_and_odd_lengths():
    torch.manual_seed(2)
    ref = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    ours = T.block_from_torch(ref)
    for b, t in [(1, 1), (1, 7), (3, 5)]:
        x = torch.randn(b, t, 8)
        lengths = torch.randint(1, t + 1, (b,))
        am = (torch.arange(t)[None] < lengths[:, None]).long()  # (B, T)
        got = ours(x, mask=am.bool()[:, None, None, :])
        want = ref(x, src_key_padding_mask=am == 0)
        real = am.bool()
        close(got[real], want[real], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_torch(norm_first):
    torch.manual_seed(3)
    d, h, ff = 16, 4, 24
    ref = nn.TransformerDecoderLayer(
        d, h, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    )
    ours = T.block_from_torch(ref)
    y = torch.randn(2, 5, d, requires_grad=True)
    memory = torch.randn(2, 7, d, requires_grad=True)
    mem_am = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    got = ours(y, memory, memory_mask=mem_am.bool()[:, None, None, :])
    want = ref(y, memory, tgt_mask=causal, memory_key_padding_mask=mem_am == 0)
    close(got, want, atol=1e-5)
    g_ours = torch.autograd.grad(got.pow(2).sum(), (y, memory))
    g_ref = torch.autograd.grad(want.pow(2).sum(), (y, memory))
    for a, b in zip(g_ours, g_ref, strict=True):
        close(a, b, atol=1e-5)


def test_decoder_block_is_causal_and_checks_memory():
    torch.manual_seed(4)
    blk = T.DecoderBlock(8, 2, 16)
    y, mem = torch.randn(1, 6, 8), torch.randn(1, 3, 8)
    base = blk(y, mem)
    y2 = y.clone()
    y2[:, 3] = torch.randn(8)
    diff = (blk(y2, mem) - base).abs().amax(dim=(0, 2))
    assert torch.all(diff[:3] == 0) and torch.all(diff[3:] > 0)
    with pytest.raises(ValueError, match="pass memory"):
        blk(y)
    gpt_blk = T.DecoderBlock(8, 2, 16, cross_attention=False)
    with pytest.raises(ValueError, match="memory must be None"):
        gpt_blk(y, mem)
    with pytest.raises(ValueError, match="memory has batch 2, x has 1"):
        blk(y, torch.randn(2, 3, 8))


def test_a_block_without_cross_attention_builds_none(monkeypatch):
    """A GPT block builds one attention, not a cross-attention it then throws away."""
    built = []

    class Counted(MultiHeadAttention):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(T, "MultiHeadAttention", Counted)
    gpt_block = T.DecoderBlock(8, 2, 16, cross_attention=False)
    assert built == [gpt_block.self_attn]
    assert gpt_block.cross_attn is None and gpt_block.norm2 is None
    built.clear()
    block = T.DecoderBlock(8, 2, 16)
    assert built == [block.self_attn, block.cross_attn]


def test_gpt_state_dict_keys_are_the_checkpoints_keys():
    """Saved checkpoints load by name: a GPT block keeps norm1 and norm3 (no norm2)."""
    gpt = T.GPT(T.GPTConfig(37, 11, 12, 3, 1, 20, tie_weights=False))
    block = [
        f"blocks.0.{name}.{p}"
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "self_attn.out_proj", "norm1", "ffn.fc1", "ffn.fc2", "norm3")
        for p in ("weight", "bias")
    ]  # fmt: skip
    want = ["tok_emb.weight", "pos_emb.weight", *block, "norm.weight", "norm.bias", "head.weight"]
    assert list(gpt.state_dict()) == want
    rope = T.GPT(T.GPTConfig(37, 11, 12, 3, 1, 20, tie_weights=False, position="rope"))
    assert list(rope.state_dict()) == [k for k in want if k != "pos_emb.weight"]


def test_fast_and_rope_are_constructor_arguments(monkeypatch):
    """GPT passes fast and position to the layers it builds; nothing is switched on afterwards."""
    seen = []

    class Recorded(MultiHeadAttention):
        def __init__(self, *args, fast=False, **kwargs):
            super().__init__(*args, fast=fast, **kwargs)
            seen.append(fast)

    monkeypatch.setattr(T, "MultiHeadAttention", Recorded)
    gpt = T.GPT(T.GPTConfig(37, 11, 12, 3, 2, 20, fast=True, position="rope"))
    assert seen == [True, True]  # each block's attention was built fast
    norms = [m for m in gpt.modules() if isinstance(m, T.LayerNorm)]
    assert len(norms) == 5 and all(n.fused for n in norms)
    assert all(b.self_attn.rotary is rope_rotate for b in gpt.blocks)
    block = T.DecoderBlock(12, 3, 20, cross_attention=False, fast=True, rope=True)
    assert block.self_attn.fast and block.norm1.fused and block.norm3.fused
    assert block.self_attn.rotary is rope_rotate
    plain = T.DecoderBlock(12, 3, 20)
    assert not plain.self_attn.fast and not plain.norm1.fused and plain.self_attn.rotary is None


def test_block_shape_and_config_errors():
    with pytest.raises(ValueError, match="not divisible by n_heads=5"):
        T.EncoderBlock(12, 5, 24)
    with pytest.raises(ValueError, match="activation must be one of"):
        T.EncoderBlock(12, 3, 24, activation="swish")
    with pytest.raises(ValueError, match="dropout must be in"):
        T.FeedForward(12, 24, dropout=1.0)
    with pytest.raises(ValueError, match=r"x must be \(batch, seq, 12\), got shape \(2, 5, 8\)"):
        T.EncoderBlock(12, 3, 24)(torch.randn(2, 5, 8))
    with pytest.raises(TypeError, match="nn.TransformerEncoderLayer or nn.TransformerDecoderLayer"):
        T.block_from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="batch_first=True"):
        T.block_from_torch(nn.TransformerEncoderLayer(8, 2))
    with pytest.raises(ValueError, match="batch_first=True"):
        T.block_from_torch(nn.TransformerDecoderLayer(8, 2))


def test_block_from_torch_builds_the_matching_block():
    enc = T.block_from_torch(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.25, batch_first=True))
    dec = T.block_from_torch(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True))
    assert type(enc) is T.EncoderBlock and type(dec) is T.DecoderBlock
    assert dec.cross_attn is not None and enc.drop.p == 0.25


# ------------------------------------------------------------------ models, configs, counts


def small_configs():
    return [
        T.GPTConfig(vocab_size=37, block_size=11, d_model=12, n_heads=3, n_layers=2, d_ff=20),
        T.GPTConfig(37, 11, 12, 3, 1, 20, tie_weights=False, activation="gelu_tanh"),
        T.EncoderDecoderConfig(30, 41, 13, 8, 2, 2, 3, 16),
        T.EncoderDecoderConfig(30, 41, 13, 8, 2, 1, 1, 16, norm_first=False),
    ]


MODELS = {T.GPTConfig: T.GPT, T.EncoderDecoderConfig: T.EncoderDecoder}


@pytest.mark.parametrize("cfg", small_configs(), ids=lambda c: type(c).__name__)
def test_parameter_count_formula(cfg):
    model = MODELS[type(cfg)](cfg)
    assert T.count_parameters(model) == T.parameters_by_formula(cfg)


def test_known_parameter_counts():
    gpt2 = T.GPTConfig(50257, 1024, 768, 12, 12, 3072)
    assert T.parameters_by_formula(gpt2) == 124_439_808  # GPT-2 small
    with pytest.raises(TypeError, match="config must be"):
        T.parameters_by_formula({"d_model": 4})


def test_gpt_shapes_causality_and_tying():
    torch.manual_seed(5)
    cfg = T.GPTConfig(vocab_size=37, block_size=11, d_model=12, n_heads=3, n_layers=2, d_ff=20)
    gpt = T.GPT(cfg)
    ids = torch.randint(0, 37, (3, 9))
    logits = gpt(ids)
    assert logits.shape == (3, 9, 37)
    assert gpt.head.weight is gpt.tok_emb.weight
    ids2 = ids.clone()
    ids2[:, 6] = (ids2[:, 6] + 1) % 37
    diff = (gpt(ids2) - logits).abs().amax(dim=(0, 2))
    assert torch.all(diff[:6] == 0) and torch.all(diff[6:] > 0)
    assert gpt(ids[:1, :1]).shape == (1, 1, 37)
    with pytest.raises(ValueError, match="at most 11"):
        gpt(torch.zeros(1, 12, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must lie in \[0, 37\)"):
        gpt(torch.full((1, 3), 37))
    with pytest.raises(TypeError, match="integer tensor"):
        gpt(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="config must be a GPTConfig, got EncoderDecoderConfig"):
        T.GPT(T.EncoderDecoderConfig(5, 5, 4, 8, 2, 1, 1, 8))


def test_encoder_decoder_shapes_and_shift():
    torch.manual_seed(6)
    cfg = T.EncoderDecoderConfig(30, 41, 13, 8, 2, 2, 2, 16)
    model = T.EncoderDecoder(cfg)
    src, tgt = torch.randint(0, 30, (2, 7)), torch.randint(1, 41, (2, 5))
    memory = model.encode(src)
    assert memory.shape == (2, 7, 8)  # one vector per source position
    tgt_in = T.shift_right(tgt, 0)
    assert tgt_in[:, 0].eq(0).all() and torch.equal(tgt_in[:, 1:], tgt[:, :-1])
    assert model(src, tgt_in).shape == (2, 5, 41)
    # padding the source with masked positions leaves the output unchanged
    src_pad = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    am = torch.cat([torch.ones(2, 7), torch.zeros(2, 3)], dim=1).long()
    close(model(src_pad, tgt_in, src_mask=am), model(src, tgt_in), atol=1e-5)
    with pytest.raises(ValueError, match="targets must be"):
        T.shift_right(torch.zeros(3, dtype=torch.long), 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.GPTConfig(0, 8, 8, 2, 1, 8), "vocab_size must be a positive integer, got 0"),
        (lambda: T.GPTConfig(10, 8, 10, 4, 1, 8), "not divisible"),
        (lambda: T.EncoderDecoderConfig(5, 5, 4, 8, 2, 1, 0, 8), "n_decoder_layers"),
        (lambda: T.EncoderDecoderConfig(5, 5, 4, 8, 2, 1, 1, 8, dropout=-0.1), "dropout"),
        (lambda: T.FeedForward(8, 0), "d_ff must be a positive integer, got 0"),
        (lambda: T.LayerNorm(-1), "d_model must be a positive integer, got -1"),
    ],
)
def test_config_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.GPTConfig(10, 8, 8, 2, 1, 8, dropout="0.1"), "dropout must be a number .*str"),
        (lambda: T.GPTConfig(10, 8, 8, 2, 1, 8, dropout=None), "dropout must be a number"),
        (lambda: T.GPTConfig(10, 8, "8", 2, 1, 8), "d_model must be an integer, got str '8'"),
        (lambda: T.GPTConfig(10, 8.0, 8, 2, 1, 8), "block_size must be an integer, got float"),
        (lambda: T.EncoderDecoderConfig(5, 5, 4, 8, 2, 1, 1, 8, dropout=True), "dropout"),
        (lambda: T.EncoderBlock(8, "2", 16), "n_heads must be an integer, got str '2'"),
        (lambda: T.GPTConfig(10, 8, 8, 2, 1, 8, init_std="0.02"), "init_std must be a"),
    ],
)
def test_config_errors_of_a_wrong_type(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_configs_take_numpy_integers_and_store_ints():
    c = T.GPTConfig(np.int64(10), np.int64(8), np.int32(8), np.int64(2), np.int64(1), 16)
    assert all(type(getattr(c, f)) is int for f in ("vocab_size", "block_size", "d_model"))
    assert T.GPT(c)(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 10)


@pytest.mark.parametrize("fast", [False, True])
def test_empty_sequences_are_refused_and_an_empty_batch_is_empty(fast):
    """A model needs at least one position (no context); a batch of 0 is fine (BERT: test_bert)."""
    gpt = T.GPT(T.GPTConfig(10, 8, 8, 2, 1, 16, fast=fast)).eval()
    with pytest.raises(
        ValueError, match=r"ids must hold at least one position, got shape \(2, 0\)"
    ):
        gpt(torch.zeros(2, 0, dtype=torch.long))
    assert gpt(torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3, 10)
    ed = T.EncoderDecoder(T.EncoderDecoderConfig(5, 6, 4, 8, 2, 1, 1, 16)).eval()
    with pytest.raises(ValueError, match=r"src must hold at least one position"):
        ed(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tgt_in must hold at least one position"):
        ed(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 0, dtype=torch.long))


def test_blocks_name_a_wrong_input_width():
    block = T.EncoderBlock(8, 2, 16)
    with pytest.raises(ValueError, match=r"x must be \(batch, seq, 8\), got shape \(1, 3, 4\)"):
        block(torch.randn(1, 3, 4))


# ------------------------------------------------------------------ notebook 04's exercises
# The answer key (course_lib.exercises.nb04) is what each check cell calls: right answers pass,
# a stub gets "not yet", and each named mistake is recognised, tried here without the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


def test_exercise_layer_norm_verdicts():
    def right(x, weight, bias, eps):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    def unbiased(x, weight, bias, eps):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias

    def eps_outside(x, weight, bias, eps):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / (x.std(-1, keepdim=True, correction=0) + eps) * weight + bias

    ok, unb, outside = _verdicts(nb04.layer_norm_by_hand, right, unbiased, eps_outside)
    assert ok == "right: all 4 cases pass. Well done!"
    assert "hint: this looks like the unbiased variance" in unb and "D - 1" in unb
    assert "hint: this looks like eps outside the square root" in outside


def test_exercise_decoder_input_verdicts():
    def right(targets, start_id):
        return torch.cat([torch.full_like(targets[:, :1], start_id), targets[:, :-1]], 1)

    def unshifted(targets, start_id):
        return targets

    def left(targets, start_id):
        return torch.cat([targets[:, 1:], torch.full_like(targets[:, :1], start_id)], 1)

    ok, uns, lft = _verdicts(nb04.decoder_input, right, unshifted, left)
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like the targets unshifted" in uns
    assert "hint: this looks like shifted left" in lft


def test_exercise_gpt_parameter_count_verdicts():
    def block(d_model, d_ff):
        return 4 * (d_model**2 + d_model) + 2 * d_model * d_ff + d_ff + 5 * d_model

    def right(vocab_size, block_size, d_model, n_layers, d_ff):
        embeddings = (vocab_size + block_size) * d_model
        return embeddings + n_layers * block(d_model, d_ff) + 2 * d_model

    def untied(vocab_size, block_size, d_model, n_layers, d_ff):
        return right(vocab_size, block_size, d_model, n_layers, d_ff) + vocab_size * d_model

    def no_biases(vocab_size, block_size, d_model, n_layers, d_ff):
        block = 4 * d_model**2 + 2 * d_model * d_ff + 4 * d_model
        return (vocab_size + block_size) * d_model + n_layers * block + 2 * d_model

    ok, unt, nob = _verdicts(nb04.gpt_parameter_count, right, untied, no_biases)
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like the output layer counted separately" in unt
    assert "hint: this looks like biases forgotten" in nob


class RightBlock(nn.Module):
    """A learner's GPTBlock: ln1, attn, ln2, fc1, fc2, pre-norm and causal."""

    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.ln1, self.attn = T.LayerNorm(d_model), MultiHeadAttention(d_model, n_heads)
        self.ln2 = T.LayerNorm(d_model)
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

    def mlp(self, h):
        return self.fc2(F.gelu(self.fc1(h)))

    def forward(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return x + self.mlp(self.ln2(x))


class PostNormBlock(RightBlock):
    def forward(self, x):
        x = self.ln1(x + self.attn(x, is_causal=True))
        return self.ln2(x + self.mlp(x))


class NotCausalBlock(RightBlock):
    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class NoAttentionResidualBlock(RightBlock):
    def forward(self, x):
        x = self.attn(self.ln1(x), is_causal=True)
        return x + self.mlp(self.ln2(x))


class NoFeedForwardResidualBlock(RightBlock):
    def forward(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return self.mlp(self.ln2(x))


class OneNormBlock(RightBlock):
    def forward(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return x + self.mlp(self.ln1(x))


class ReluBlock(RightBlock):
    def forward(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


class LibraryNamesBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.norm1 = T.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads)

    def forward(self, x):
        return x


class StubBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        raise NotImplementedError("Exercise: replace this line with your code")


def test_exercise_gpt_block_verdicts():
    right, post, causal, res_attn, res_ffn, one_norm, relu, names, stub = _verdicts(
        nb04.gpt_block,
        RightBlock,
        PostNormBlock,
        NotCausalBlock,
        NoAttentionResidualBlock,
        NoFeedForwardResidualBlock,
        OneNormBlock,
        ReluBlock,
        LibraryNamesBlock,
        StubBlock,
    )
    assert right == "RightBlock: all 3 cases pass. Well done!"
    assert "hint: this looks like post-norm instead of pre-norm" in post
    assert "hint: this looks like attention without the causal mask" in causal
    assert "hint: this looks like the residual around attention missing" in res_attn
    assert "hint: this looks like the residual around the feed-forward missing" in res_ffn
    assert "hint: this looks like ln1 used for both sub-layers" in one_norm
    assert "hint: this looks like ReLU in the feed-forward" in relu
    assert "must carry the names given in the exercise" in names
    assert "expected the attributes ['ln1', 'attn', 'ln2', 'fc1', 'fc2']" in names
    assert stub.startswith("StubBlock: not yet.")


def test_a_learners_error_quotes_the_learners_line():
    class Typo(RightBlock):
        def forward(self, x):
            return x + self.attn(self.ln1(x.mT), is_causal=True)

    verdict = nb04.gpt_block(Typo, quiet=True).message
    assert "Typo raised ValueError" in verdict
    assert "(line 2 of forward: `return x + self.attn(self.ln1(x.mT), is_causal=True)`)" in verdict


class RightGPT(nn.Module):
    """A learner's MiniGPT with T.GPT's names: tok_emb, pos_emb, blocks, norm, head."""

    def __init__(self, config, tie=None, activation=None):
        super().__init__()
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model)
        act = activation or c.activation
        sizes = (c.d_model, c.n_heads, c.d_ff)
        self.blocks = nn.ModuleList(
            T.DecoderBlock(*sizes, activation=act, cross_attention=False) for _ in range(c.n_layers)
        )
        self.norm = T.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights if tie is None else tie:
            self.head.weight = self.tok_emb.weight

    def embed(self, ids):
        return self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1]))

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class NoFinalNormGPT(RightGPT):
    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class NoPositionsGPT(RightGPT):
    def embed(self, ids):
        return self.tok_emb(ids)


class SoftmaxGPT(RightGPT):
    def forward(self, ids):
        return torch.softmax(super().forward(ids), dim=-1)


class UntiedGPT(RightGPT):
    def __init__(self, config):
        super().__init__(config, tie=False)


class AlwaysTiedGPT(RightGPT):
    def __init__(self, config):
        super().__init__(config, tie=True)


class DefaultActivationGPT(RightGPT):
    def __init__(self, config):
        super().__init__(config, activation="gelu")


def test_exercise_gpt_verdicts():
    verdicts = _verdicts(
        nb04.gpt,
        RightGPT,
        NoFinalNormGPT,
        NoPositionsGPT,
        SoftmaxGPT,
        UntiedGPT,
        AlwaysTiedGPT,
        DefaultActivationGPT,
    )
    right, no_norm, no_pos, soft, untied, tied, act = verdicts
    assert right == "RightGPT: all 4 cases pass. Well done!"
    assert "hint: this looks like the final layer norm missing" in no_norm
    assert "hint: this looks like the positions left out" in no_pos
    assert "hint: this looks like probabilities instead of logits" in soft
    assert "hint: this looks like the head not tied to the embedding" in untied
    assert "case 'head not tied' does not" in tied
    assert "hint: this looks like the head tied although the config says not" in tied
    assert "hint: this looks like config.activation ignored" in act


def test_exercise_gpt_stub_is_not_yet_and_the_global_rng_is_left_alone():
    class StubGPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            raise NotImplementedError("Exercise: replace this line with your code")

    assert nb04.gpt(StubGPT, quiet=True).status == "not yet"
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert nb04.gpt(RightGPT, quiet=True).passed and nb04.gpt_block(RightBlock, quiet=True).passed
    assert torch.equal(torch.get_rng_state(), before)


def _greedy(model, ids, max_new_tokens, crop=True, position=-1):
    for _ in range(max_new_tokens):
        context = ids[:, -model.config.block_size :] if crop else ids
        with torch.no_grad():
            logits = model(context)  # (B, T', V)
        ids = torch.cat([ids, logits[:, position].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_exercise_greedy_generate_verdicts():
    def greedy(model, ids, max_new_tokens):
        return _greedy(model, ids, max_new_tokens)

    def uncropped(model, ids, max_new_tokens):
        return _greedy(model, ids, max_new_tokens, crop=False)

    def first_position(model, ids, max_new_tokens):
        return _greedy(model, ids, max_new_tokens, position=0)

    def new_only(model, ids, max_new_tokens):
        return _greedy(model, ids, max_new_tokens)[:, ids.shape[1] :]

    def stub(model, ids, max_new_tokens):
        raise NotImplementedError("Exercise: replace this line with your code")

    ok, unc, first, new, not_yet = _verdicts(
        nb04.greedy_generate, greedy, uncropped, first_position, new_only, stub
    )
    assert ok == "greedy: all 4 cases pass. Well done!"
    assert "hint: this looks like the context not cropped" in unc
    assert "hint: this looks like the argmax of the first position" in first
    assert "hint: this looks like only the new tokens returned" in new
    assert not_yet.startswith("stub: not yet.")


def test_the_right_greedy_loop_equals_generate_on_a_real_gpt():
    # the checker's models accept long inputs; a real T.GPT (which refuses them) gives the same
    gpt = T.GPT(T.GPTConfig(19, 4, 8, 2, 2, 16)).eval()
    ids = torch.randint(0, 19, (2, 3), generator=torch.Generator().manual_seed(0))
    want = generate_module.generate(gpt, ids, 6, do_sample=False)
    assert torch.equal(_greedy(gpt, ids, 6), want)
    with pytest.raises(ValueError, match="the model holds at most 4"):
        _greedy(gpt, ids, 6, crop=False)


# ------------------------------------------------------------------ the trainer's fast path


def test_gpt_fast_path_equals_the_hand_written_path_forward_and_backward():
    torch.manual_seed(0)
    slow_cfg = T.GPTConfig(37, 11, 12, 3, 2, 20)
    fast_cfg = T.GPTConfig(37, 11, 12, 3, 2, 20, fast=True)
    slow, fast = T.GPT(slow_cfg), T.GPT(fast_cfg)
    fast.load_state_dict(slow.state_dict())  # the same parameters, by name
    ids = torch.randint(0, 37, (3, 7))
    ids_b1 = torch.randint(0, 37, (1, 11))
    for x in (ids, ids_b1):
        a, b = slow(x), fast(x)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        a.square().mean().backward()
        b.square().mean().backward()
        for (name, p), q in zip(slow.named_parameters(), fast.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
        slow.zero_grad()
        fast.zero_grad()
    # with a padding mask the fast path combines it with the causal mask, as the slow one does
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]])
    torch.testing.assert_close(
        fast(ids, attention_mask=mask), slow(ids, attention_mask=mask), rtol=1e-5, atol=1e-6
    )


def test_is_causal_is_for_self_attention_only():
    from course_lib.attention import MultiHeadAttention

    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="is_causal=True applies to self-attention"):
        mha(x, kv=torch.randn(2, 4, 8), is_causal=True)


def test_gpt2_initialisation_starts_near_uniform_loss():
    torch.manual_seed(0)
    cfg = T.GPTConfig(65, 32, 64, 4, 4, 256, init_std=0.02)
    model = T.GPT(cfg)
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    residual = model.blocks[0].ffn.fc2.weight.std().item()
    assert abs(residual - 0.02 / (2 * 4) ** 0.5) < 0.001
    assert all(b.abs().max() == 0 for n, b in model.named_parameters() if n.endswith(".bias")
               and "norm" not in n)  # fmt: skip
    ids = torch.randint(0, 65, (8, 32))
    targets = torch.randint(0, 65, (8, 32))
    loss = torch.nn.functional.cross_entropy(model(ids).reshape(-1, 65), targets.reshape(-1))
    assert abs(loss.item() - math.log(65)) < 0.05  # ~ln V, not the ~8 nats of std-1 embeddings
    default = T.GPT(T.GPTConfig(65, 32, 64, 4, 4, 256))
    assert default.tok_emb.weight.std().item() > 0.9  # PyTorch's N(0, 1) embedding, unchanged
    with pytest.raises(ValueError, match="init_std must be a positive number"):
        T.GPTConfig(65, 32, 64, 4, 4, 256, init_std=0)


def test_gpt_without_biases_counts_and_runs():
    cfg = T.GPTConfig(37, 11, 12, 3, 2, 20, bias=False, fast=True)
    model = T.GPT(cfg)
    assert not [n for n, _ in model.named_parameters() if n.endswith(".bias")]
    assert T.count_parameters(model) == T.parameters_by_formula(cfg)
    assert model(torch.randint(0, 37, (2, 5))).shape == (2, 5, 37)


def test_gpt_with_rotary_positions():
    cfg = T.GPTConfig(37, 11, 12, 3, 2, 20, position="rope")
    slow = T.GPT(cfg)
    assert slow.pos_emb is None
    assert T.count_parameters(slow) == T.parameters_by_formula(cfg)
    fast = T.GPT(T.GPTConfig(37, 11, 12, 3, 2, 20, position="rope", fast=True))
    fast.load_state_dict(slow.state_dict())
    ids = torch.randint(0, 37, (2, 9))
    torch.testing.assert_close(fast(ids), slow(ids), rtol=1e-5, atol=1e-6)
    # positions matter: the same tokens in another order give other next-token scores
    ids2 = ids.flip(1)
    assert not torch.allclose(slow(ids)[:, -1], slow(ids2)[:, -1])
    with pytest.raises(ValueError, match="position must be 'learned' or 'rope'"):
        T.GPTConfig(37, 11, 12, 3, 2, 20, position="alibi")
    with pytest.raises(ValueError, match="head width 3 must be even"):
        T.GPTConfig(37, 11, 9, 3, 2, 20, position="rope")
    mha = slow.blocks[0].self_attn
    with pytest.raises(ValueError, match="rotary position embeddings apply to self-attention"):
        mha(torch.randn(2, 4, 12), kv=torch.randn(2, 5, 12))


# ------------------------------------------------------------------ today's block (issue 18)
# RMS norm, the gated MLP (SwiGLU), QK-norm and grouped-query attention as GPTConfig options.
# The parts are proven equal to PyTorch in test_norms, test_feedforward and test_attention;
# here: the block they make, the model's options, counts, errors, and old checkpoints.

TODAY = dict(norm="rms", mlp="gated", activation="silu", qk_norm=True, n_kv_heads=2)


def _today_block_by_torch(block, x, eps=1e-5):
    """A pre-norm GPT block written with PyTorch's own pieces: F.rms_norm (eps passed),
    F.scaled_dot_product_attention(..., enable_gqa=True), F.silu. x: (B, T, D). No rotary
    positions (`rope_rotate` computes in float32; its own tests and the GPT's cover it)."""
    attn, d = block.self_attn, block.d_model
    rms = lambda t, norm: F.rms_norm(t, (t.shape[-1],), norm.weight, eps)  # noqa: E731
    h = rms(x, block.norm1)
    heads = lambda t, n: t.unflatten(-1, (n, -1)).transpose(1, 2)  # noqa: E731
    q = rms(heads(F.linear(h, attn.q_proj.weight), attn.n_heads), attn.q_norm)
    k = rms(heads(F.linear(h, attn.k_proj.weight), attn.n_kv_heads), attn.k_norm)
    v = heads(F.linear(h, attn.v_proj.weight), attn.n_kv_heads)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    x = x + F.linear(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], d), attn.out_proj.weight)
    h = rms(x, block.norm3)
    ffn = block.ffn
    gated = F.silu(F.linear(h, ffn.gate_proj.weight)) * F.linear(h, ffn.up_proj.weight)
    return x + F.linear(gated, ffn.down_proj.weight)


@pytest.mark.parametrize("fast", [False, True])
def test_todays_block_equals_pytorch_pieces_forward_and_backward(fast):
    """A whole block (many operations) in float64, where only rounding separates the two."""
    torch.manual_seed(18)
    block = T.DecoderBlock(24, 6, 40, cross_attention=False, bias=False, fast=fast,
                           norm="rms", mlp="gated", activation="silu", qk_norm=True,
                           n_kv_heads=2).double()  # fmt: skip
    with torch.no_grad():  # non-trivial norm scales
        for norm in (block.norm1, block.norm3, block.self_attn.q_norm, block.self_attn.k_norm):
            norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 7, 24, dtype=torch.float64, requires_grad=True)
    ours, ref = block(x), _today_block_by_torch(block, x)
    close(ours, ref, rtol=1e-7, atol=1e-10)
    g = torch.randn_like(ours)
    wrt = [x, *block.parameters()]
    for a, b in zip(torch.autograd.grad(ours, wrt, g), torch.autograd.grad(ref, wrt, g),
                    strict=True):  # fmt: skip
        close(a, b, rtol=1e-7, atol=1e-10)


def test_todays_gpt_fast_path_equals_the_hand_written_path():
    torch.manual_seed(1)
    cfg = T.GPTConfig(37, 11, 16, 4, 2, 24, bias=False, position="rope", init_std=0.02, **TODAY)
    slow = T.GPT(cfg)
    fast = T.GPT(T.GPTConfig(37, 11, 16, 4, 2, 24, bias=False, position="rope", fast=True,
                             **TODAY))  # fmt: skip
    fast.load_state_dict(slow.state_dict())
    ids = torch.randint(0, 37, (3, 9))
    a, b = slow(ids), fast(ids)
    close(b, a)
    a.square().mean().backward()
    b.square().mean().backward()
    for (name, p), q in zip(slow.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
    norms = [m for m in fast.modules() if isinstance(m, T.RMSNorm)]
    assert len(norms) == 2 * 2 + 2 * 2 + 1 and all(n.fused for n in norms)
    # causal still: a change at position 5 moves positions 5.. only
    ids2 = ids.clone()
    ids2[:, 5] = (ids2[:, 5] + 1) % 37
    diff = (slow(ids2) - slow(ids)).abs().amax(dim=(0, 2))
    assert torch.all(diff[:5] == 0) and torch.all(diff[5:] > 0)
    # GPT-2's initialisation scales the gated MLP's output projection, down_proj
    std = slow.blocks[0].ffn.down_proj.weight.std().item()
    assert abs(std - 0.02 / 2) < 0.004


def test_todays_gpt_parameter_names():
    gpt = T.GPT(T.GPTConfig(37, 11, 12, 3, 1, 20, bias=False, position="rope", norm="rms",
                            mlp="gated", qk_norm=True, n_kv_heads=1))  # fmt: skip
    shapes = {k: tuple(v.shape) for k, v in gpt.state_dict().items()}
    assert shapes == {
        "tok_emb.weight": (37, 12),
        "blocks.0.self_attn.q_proj.weight": (12, 12),
        "blocks.0.self_attn.k_proj.weight": (4, 12),  # one key/value head of width 4
        "blocks.0.self_attn.v_proj.weight": (4, 12),
        "blocks.0.self_attn.out_proj.weight": (12, 12),
        "blocks.0.self_attn.q_norm.weight": (4,),
        "blocks.0.self_attn.k_norm.weight": (4,),
        "blocks.0.norm1.weight": (12,),
        "blocks.0.ffn.gate_proj.weight": (20, 12),
        "blocks.0.ffn.up_proj.weight": (20, 12),
        "blocks.0.ffn.down_proj.weight": (12, 20),
        "blocks.0.norm3.weight": (12,),
        "norm.weight": (12,),
        "head.weight": (37, 12),
    }


def _every_block_option():
    """Every combination of norm, mlp, qk_norm, n_kv_heads and bias, with tying and positions
    alternating: 2 x 2 x 2 x 4 x 2 = 64 configs."""
    combos = itertools.product(("layer", "rms"), ("plain", "gated"), (False, True),
                               (None, 1, 2, 4), (True, False))  # fmt: skip
    for k, (norm, mlp, qk, kv, bias) in enumerate(combos):
        yield T.GPTConfig(29, 9, 16, 4, 2, 12, norm=norm, mlp=mlp, qk_norm=qk, n_kv_heads=kv,
                          bias=bias, tie_weights=k % 2 == 0,
                          position=("learned", "rope")[k // 2 % 2])  # fmt: skip


@pytest.mark.parametrize("cfg", list(_every_block_option()), ids=lambda c: (
    f"{c.norm}-{c.mlp}-qk{int(c.qk_norm)}-kv{c.n_kv_heads}-b{int(c.bias)}"))  # fmt: skip
def test_parameter_count_formula_for_every_block_option(cfg):
    model = T.GPT(cfg)
    assert T.count_parameters(model) == T.parameters_by_formula(cfg)
    assert model(torch.randint(0, 29, (2, 5))).shape == (2, 5, 29)


def test_parameter_counts_by_hand_for_todays_block():
    """D = 16, 4 heads of 4, d_ff 12, V 29, 2 layers, tied, rope, no biases."""
    base = dict(bias=False, position="rope")
    per_layer_2019 = 4 * 16 * 16 + 2 * 16 * 12 + 2 * 16  # attention, MLP, 2 norm scales
    counts = {
        (): 29 * 16 + 2 * per_layer_2019 + 16,
        (("norm", "rms"),): 29 * 16 + 2 * per_layer_2019 + 16,  # no shifts to drop: the same
        (("mlp", "gated"),): 29 * 16 + 2 * (per_layer_2019 + 16 * 12) + 16,  # a third matrix
        (("qk_norm", True),): 29 * 16 + 2 * (per_layer_2019 + 2 * 4) + 16,  # 2 scales of d_head
        (("n_kv_heads", 1),): 29 * 16 + 2 * (per_layer_2019 - 2 * 16 * 12) + 16,  # k, v 16 -> 4
    }
    for options, want in counts.items():
        assert T.parameters_by_formula(T.GPTConfig(29, 9, 16, 4, 2, 12, **base, **dict(options)))\
            == want, options  # fmt: skip
    gpt2 = T.GPTConfig(50257, 1024, 768, 12, 12, 3072)
    assert T.parameters_by_formula(gpt2) == 124_439_808  # unchanged by the new options


def test_default_options_build_the_2019_block():
    c = T.GPTConfig(37, 11, 12, 3, 1, 20)
    assert (c.norm, c.mlp, c.qk_norm, c.n_kv_heads) == ("layer", "plain", False, None)
    gpt = T.GPT(c)
    block = gpt.blocks[0]
    assert type(block.norm1) is T.LayerNorm and type(block.ffn) is T.FeedForward
    assert block.self_attn.q_norm is None and block.self_attn.n_kv_heads == 3
    same = T.GPT(T.GPTConfig(37, 11, 12, 3, 1, 20, n_kv_heads=3))  # all heads, said explicitly
    assert list(same.state_dict()) == list(gpt.state_dict())


def test_a_checkpoint_written_before_the_options_loads_unchanged(tmp_path):
    """A file whose config lacks norm, mlp, qk_norm and n_kv_heads (every checkpoint written
    before them, the shipped reference model included) loads as the 2019 block."""
    from course_lib import checkpoints
    from course_lib.tokenizers import CharTokenizer

    torch.manual_seed(2)
    cfg = T.GPTConfig(12, 8, 8, 2, 1, 16, bias=False, position="rope")
    model = T.GPT(cfg).eval()
    payload = checkpoints.model_payload(model, CharTokenizer.train("abcdefghijk"))
    for name in ("norm", "mlp", "qk_norm", "n_kv_heads"):
        del payload["config"][name]
    path = checkpoints.save_checkpoint(tmp_path / "old.pt", payload)
    loaded, _ = checkpoints.load_model(path)
    assert loaded.config == cfg
    ids = torch.randint(0, 12, (2, 6))
    assert torch.equal(loaded(ids), model(ids))
    payload["config"].pop("d_model")  # a field without a default is still required
    bad = checkpoints.save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(checkpoints.CheckpointError, match="missing field 'config.d_model'"):
        checkpoints.load_model(bad)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(norm="batch"), ValueError, r"norm must be one of \['layer', 'rms'\], got 'batch'"),
        (dict(mlp="swiglu"), ValueError, r"mlp must be one of \['plain', 'gated'\], got 'swiglu'"),
        (dict(norm=None), TypeError, "norm must be a str, one of .*, got NoneType"),
        (dict(activation="swish", mlp="gated"), ValueError, "activation must be one of"),
        (dict(n_kv_heads=3), ValueError, "n_kv_heads=3 must divide n_heads=4"),
        (dict(n_kv_heads=0), ValueError, "n_kv_heads must be a positive integer, got 0"),
        (dict(n_kv_heads="2"), TypeError, "n_kv_heads must be an integer, got str '2'"),
        (dict(qk_norm=1), TypeError, "qk_norm must be True or False, got int"),
    ],
)
def test_todays_options_refuse_bad_values(options, error, message):
    with pytest.raises(error, match=message):
        T.GPTConfig(29, 9, 16, 4, 2, 12, **options)


def test_block_options_refuse_bad_values():
    with pytest.raises(ValueError, match="norm must be one of"):
        T.DecoderBlock(16, 4, 12, cross_attention=False, norm="scale")
    with pytest.raises(ValueError, match="mlp must be one of"):
        T.DecoderBlock(16, 4, 12, cross_attention=False, mlp="moe")
    with pytest.raises(ValueError, match="n_kv_heads=3 must divide n_heads=4"):
        T.DecoderBlock(16, 4, 12, cross_attention=False, n_kv_heads=3)
    c = T.GPTConfig(29, 9, 16, 4, 2, 12, n_kv_heads=np.int64(2))
    assert type(c.n_kv_heads) is int
