"""The key/value cache (course_lib.attention.KVCache through GPT.forward and generate) and
course_lib.inference: int8 weights, speculative decoding, distillation."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generate as G
from course_lib import inference as I
from course_lib import positions
from course_lib.attention import KVCache, causal_mask, kv_cache_bytes
from course_lib.transformer import GPT, GPTConfig


def gpt(seed=0, **kw) -> GPT:
    sizes = dict(vocab_size=23, block_size=16, d_model=32, n_heads=4, n_layers=2, d_ff=48)
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**sizes, "init_std": 0.1, **kw})).eval()


KINDS = [
    dict(position=p, n_kv_heads=kv, fast=fast)
    for p in ("learned", "rope")
    for kv in (None, 2, 1)
    for fast in (False, True)
]


# ------------------------------------------------------------------------------- the cache


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: "-".join(map(str, k.values())))
def test_cached_logits_equal_recomputation_at_every_step(kind):
    model = gpt(**kind, qk_norm=kind["fast"])
    ids = torch.randint(0, 23, (3, 16), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = model.new_cache(3)
    steps = [model(ids[:, :4], cache=cache)] + [
        model(ids[:, t : t + 1], cache=cache) for t in range(4, 16)
    ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    cache = model.new_cache(3)  # chunks of several tokens: the mask is offset by the cache
    chunks = [model(ids[:, a:b], cache=cache) for a, b in ((0, 5), (5, 11), (11, 16))]
    torch.testing.assert_close(torch.cat(chunks, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 16


@pytest.mark.parametrize("position", ["learned", "rope"])
@pytest.mark.parametrize("keep", [None, 12, 1])
def test_greedy_output_is_the_same_with_and_without_the_cache_past_the_window(position, keep):
    model = gpt(position=position, fast=True)
    ids = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(2))
    a = G.generate(model, ids, 40, do_sample=False, keep=keep)
    b = G.generate(model, ids, 40, do_sample=False, keep=keep, use_cache=False)
    assert torch.equal(a, b)


def reference_window(model, ids, n, keep):
    """Greedy decoding without a cache, the window moved by hand: when the next step needs more
    than block_size tokens, keep the newest `keep`."""
    block, start = model.config.block_size, max(0, ids.shape[1] - model.config.block_size)
    for _ in range(n):
        if ids.shape[1] - start > block:
            start = ids.shape[1] - keep
        ids = torch.cat([ids, model(ids[:, start:])[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


@pytest.mark.parametrize("keep", [16, 12, 5])
def test_the_window_policy_is_the_documented_one(keep):
    model = gpt(position="learned")
    ids = torch.randint(0, 23, (1, 20), generator=torch.Generator().manual_seed(3))  # > block
    want = reference_window(model, ids, 30, keep)
    assert torch.equal(G.generate(model, ids, 30, do_sample=False, keep=keep), want)
    if keep == 16:  # the default slides one token a step: notebook 04's loop
        assert torch.equal(G.generate(model, ids, 30, do_sample=False), want)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("position", ["learned", "rope"])
def test_a_left_padded_batch_continues_each_row_as_it_would_alone(use_cache, position):
    model = gpt(position=position, fast=True, n_kv_heads=2)
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, 23, (n,), generator=g) for n in (6, 2, 4)]
    ids = torch.zeros(3, 6, dtype=torch.long)
    mask = torch.zeros(3, 6, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, 6 - len(p) :], mask[i, 6 - len(p) :] = p, 1
    out = G.generate(model, ids, 8, do_sample=False, attention_mask=mask, use_cache=use_cache)
    for i, p in enumerate(prompts):
        alone = G.generate(model, p[None], 8, do_sample=False)
        assert torch.equal(out[i, 6:], alone[0, len(p) :]), i


def test_sampling_draws_the_same_tokens_with_and_without_the_cache():
    model = gpt(position="rope", fast=True)
    ids = torch.tensor([[1, 2, 3]])
    draws = [
        G.generate(model, ids, 10, generator=torch.Generator().manual_seed(5), use_cache=c)
        for c in (True, False)
    ]
    assert torch.equal(*draws)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_cache_bytes_equal_the_formula(kv_heads):
    model = gpt(n_kv_heads=kv_heads)
    cache = model.new_cache(batch=2)
    model(torch.zeros(2, 16, dtype=torch.long), cache=cache)
    want = kv_cache_bytes(2, kv_heads, 8, 16, batch=2, dtype=torch.float32)
    assert cache.nbytes() == want


def test_cache_misuse_is_named():
    model = gpt()
    cache = model.new_cache()
    model(torch.zeros(1, 14, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="after 14 cached positions has 3 positions"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"must be \(1, 16\).*14 cached positions"):
        model(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2), cache=cache)
    with pytest.raises(ValueError, match=r"length must be an int in \[0, 14\]"):
        cache.crop(15)
    cache.crop(10)
    assert cache.length == 10 and all(layer.length == 10 for layer in cache.layers)
    with pytest.raises(ValueError, match="do not fit"):
        KVCache(1, 1, 1, 4, 3).layers[0].update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"must be \(1, 1, 2, 4\)"):
        KVCache(1, 1, 1, 4, 3).layers[0].update(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    with pytest.raises(ValueError, match="past must be an int >= 0"):
        causal_mask(3, past=-1)
    with pytest.raises(ValueError, match="positions must be ints"):
        positions.rope_rotate(torch.zeros(1, 2, 3, 4), positions=torch.arange(4))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(attention_mask=torch.tensor([[1, 0, 1]])), "0s then 1s"),
        (dict(attention_mask=torch.tensor([[1, 1, 0]])), "the last token real"),
        (dict(attention_mask=torch.tensor([[1, 1]])), r"must be \(1, 3\)"),
        (dict(keep=17), "more than the context of 16"),
        (dict(keep=0), "keep"),
    ],
)
def test_bad_generate_window_input_is_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        G.generate(gpt(), torch.tensor([[1, 2, 3]]), 2, **kwargs)


def test_causal_mask_with_a_past_is_the_triangle_shifted():
    m = causal_mask(2, past=3)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_step_times_cover_each_new_token_and_refuse_a_moving_window():
    model = gpt()
    assert len(I.step_times(model, torch.tensor([[1]]), 5, use_cache=True)) == 5
    with pytest.raises(ValueError, match="over the context of 16"):
        I.step_times(model, torch.tensor([[1, 2]]), 15, use_cache=False)


# ------------------------------------------------------------------------------- int8


def test_per_channel_and_per_tensor_errors_stay_within_half_a_step():
    w = (
        torch.randn(24, 40, generator=torch.Generator().manual_seed(6))
        * torch.logspace(-2, 0, 24)[:, None]
    )
    w[3, 7] = 5.0  # one large weight: it sets the per-tensor scale
    q_c, s_c = I.quantize_per_channel(w)
    q_t, s_t = I.quantize_per_tensor(w)
    assert q_c.dtype == q_t.dtype == torch.int8 and s_c.shape == (24, 1) and s_t.shape == (1, 1)
    err_c = (I.dequantize(q_c, s_c) - w).abs()
    err_t = (I.dequantize(q_t, s_t) - w).abs()
    half = 0.5 + 1e-4  # half a step, and float32 rounding of the product q * scale
    assert (err_c <= half * s_c).all() and (err_t <= half * s_t).all()
    assert torch.equal(s_c.squeeze(), w.abs().amax(1) / 127.5)
    # per channel: every row's error is at most the per-tensor bound, and most are far below
    assert (err_c.amax(1) <= err_t.amax(1) + 1e-7).all()
    assert err_c.mean() < err_t.mean() / 4


def test_int8_weights_equal_torchao_value_for_value():
    model = gpt(bias=False)
    ours, theirs = I.quantize_model(model), I.torchao_int8(model)
    n = 0
    for a, b in zip(ours.modules(), theirs.modules(), strict=True):
        if isinstance(a, I.Int8Linear):
            assert torch.equal(a.q, b.weight.qdata) and torch.equal(a.scale, b.weight.scale)
            n += 1
    assert n == 2 * 6 + 1  # q, k, v, out, fc1, fc2 per block, and the output layer
    ids = torch.randint(0, 23, (2, 16), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours(ids), theirs(ids), rtol=1e-4, atol=1e-4)
    assert I.linear_weight_bytes(ours) == I.linear_weight_bytes(theirs)


def test_int8_linear_is_the_dequantized_product_and_the_copy_leaves_the_model_alone():
    lin = nn.Linear(40, 24)
    small = I.Int8Linear.from_linear(lin)
    x = torch.randn(3, 5, 40)
    want = F.linear(x, I.dequantize(small.q, small.scale), lin.bias)
    torch.testing.assert_close(small(x), want, rtol=1e-5, atol=1e-6)
    model = gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    I.quantize_model(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_the_reference_models_int8_copy_is_4x_smaller_and_costs_under_002_nats():
    from course_lib import data, models

    model, tok, _ = models.load_reference()
    small = I.quantize_model(model)
    ratio = I.linear_weight_bytes(model) / I.linear_weight_bytes(small)
    assert ratio >= 3.5
    val = torch.tensor(tok.encode(data.load_corpus("val", "small")[:20_000]))
    loss, loss8 = (I.val_loss(m, val, 256, 12) for m in (model, small))
    assert abs(loss8 - loss) < 0.02


@pytest.mark.parametrize(
    "w, words",
    [
        (torch.zeros(3), "2-D float"),
        (torch.zeros(2, 2, dtype=torch.long), "2-D float"),
        (torch.tensor([[float("nan")]]), "inf or NaN"),
    ],
)
def test_bad_weights_are_named(w, words):
    with pytest.raises(ValueError, match=words):
        I.quantize_per_channel(w)


# ------------------------------------------------------------------------------- speculative


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("prompt_len", [1, 4])
def test_speculative_output_is_the_targets_greedy_output(k, prompt_len):
    target, draft = gpt(1, block_size=40).double(), gpt(2, block_size=40, n_layers=1).double()
    ids = torch.randint(0, 23, (1, prompt_len), generator=torch.Generator().manual_seed(k))
    want = G.generate(target, ids, 25, do_sample=False)
    out, stats = I.speculative_generate(target, draft, ids, 25, k=k)
    assert torch.equal(out, want)
    assert 0 <= stats.accepted <= stats.proposed and stats.target_passes <= 25


def test_a_draft_that_is_the_target_is_always_accepted():
    target = gpt(1, block_size=40).double()
    out, stats = I.speculative_generate(target, target, torch.tensor([[3]]), 24, k=3)
    assert torch.equal(out, G.generate(target, torch.tensor([[3]]), 24, do_sample=False))
    assert stats.acceptance_rate == 1.0 and stats.target_passes == 6  # 4 tokens a pass


def test_accept_prefix_keeps_the_agreeing_prefix_and_one_target_token():
    t = torch.tensor
    assert I.accept_prefix(t([5, 6, 7]), t([5, 6, 7, 8])) == (3, 8)
    assert I.accept_prefix(t([5, 9, 7]), t([5, 6, 7, 8])) == (1, 6)  # 7 agrees too late
    assert I.accept_prefix(t([1]), t([2, 3])) == (0, 2)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(k=0), "k"),
        (dict(draft=gpt(vocab_size=30)), "vocabulary"),
        (dict(max_new_tokens=14), "over the context of 16"),
        (dict(ids=torch.zeros(2, 1, dtype=torch.long)), "one sequence"),
    ],
)
def test_bad_speculative_input_is_named(kwargs, words):
    args = dict(target=gpt(), draft=gpt(1), ids=torch.tensor([[1]]), max_new_tokens=4, k=2)
    with pytest.raises(ValueError, match=words):
        I.speculative_generate(**{**args, **kwargs})


# ------------------------------------------------------------------------------- distillation


def test_distillation_loss_is_the_weighted_sum_written_out():
    g = torch.Generator().manual_seed(8)
    s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    y = torch.randint(0, 5, (2, 3), generator=g)
    temp, alpha = 2.0, 0.3
    p_t = torch.softmax(t.double() / temp, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s.double() / temp, -1))).sum(-1).mean()
    ce = -torch.log_softmax(s.double(), -1).gather(-1, y[..., None]).mean()
    want = alpha * temp**2 * kl + (1 - alpha) * ce
    got = I.distillation_loss(s, t, y, temp, alpha)
    assert math.isclose(got.item(), want.item(), rel_tol=1e-5)
    assert torch.equal(
        I.distillation_loss(s, t, y, temp, 0.0), F.cross_entropy(s.flatten(0, 1), y.flatten())
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=0), "temperature"),
        (dict(alpha=1.5), "alpha"),
        (dict(teacher_logits=torch.zeros(2, 3, 4)), "both be"),
        (dict(targets=torch.zeros(2, 2, dtype=torch.long)), "targets must be"),
    ],
)
def test_bad_distillation_input_is_named(kwargs, words):
    args = dict(
        student_logits=torch.zeros(2, 3, 5),
        teacher_logits=torch.zeros(2, 3, 5),
        targets=torch.zeros(2, 3, dtype=torch.long),
    )
    with pytest.raises(ValueError, match=words):
        I.distillation_loss(**{**args, **kwargs})


def test_a_student_learns_from_the_data_and_from_a_teacher():
    x = torch.randint(0, 23, (32, 16), generator=torch.Generator().manual_seed(9))
    y = torch.roll(x, -1, 1)
    for teacher_logits in (None, I.soft_targets(gpt(3), x)):
        losses = I.train_student(gpt(4), x, y, 40, teacher_logits=teacher_logits, batch_size=8)
        assert sum(losses[-5:]) < sum(losses[:5])
    with pytest.raises(ValueError, match="teacher_logits must be"):
        I.train_student(gpt(4), x, y, 2, teacher_logits=torch.zeros(3, 16, 23))
