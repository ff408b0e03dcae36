"""course_lib.memory: the number formats against torch.finfo, the activation formula against a
count by hand, the whole budget against a measured training step (float32 and bfloat16
autocast, within 25%), the saved-tensor counter, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import memory, transformer

# A tiny GPT of awkward sizes: B 3, T 20 of a block of 24, D 32, H 4, F 80, L 2, V 37.
B, T, D, H, FF, L, V = 3, 20, 32, 4, 80, 2, 37


def config(**kw) -> transformer.GPTConfig:
    base = dict(vocab_size=V, block_size=24, d_model=D, n_heads=H, n_layers=L, d_ff=FF, fast=True)
    return transformer.GPTConfig(**{**base, "init_std": 0.02, **kw})


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)


# --------------------------------------------------------------------------- number formats


@pytest.mark.parametrize(
    "dtype, exponent, mantissa",
    [
        (torch.float64, 11, 52),
        (torch.float32, 8, 23),
        (torch.float16, 5, 10),
        (torch.bfloat16, 8, 7),
    ],
)
def test_float_format_matches_finfo(dtype, exponent, mantissa):
    f, info = memory.float_format(dtype), torch.finfo(dtype)
    assert (f.sign, f.exponent, f.mantissa) == (1, exponent, mantissa)
    assert f.bits == info.bits and f.eps == info.eps and f.precision == mantissa + 1
    # the largest finite number follows from the layout: (2 - eps) * 2^(2^(e-1) - 1)
    assert (2 - f.eps) * 2.0 ** (2 ** (f.exponent - 1) - 1) == info.max
    assert f.decimal_digits == pytest.approx((mantissa + 1) * math.log10(2))


def test_tf32_keeps_float32_range_with_float16_precision():
    f32, f16 = memory.float_format(torch.float32), memory.float_format(torch.float16)
    assert memory.TF32.exponent == f32.exponent and memory.TF32.mantissa == f16.mantissa
    assert memory.TF32.bits == 19 and memory.TF32.precision == 11


def test_float_format_refuses_non_float_dtypes():
    with pytest.raises(ValueError, match="floating-point"):
        memory.float_format(torch.int64)
    with pytest.raises(TypeError, match="torch.dtype"):
        memory.float_format("bfloat16")


# --------------------------------------------------------------------------- the formula


def by_hand(low: int, autocast: bool, **kw) -> int:
    """The saved bytes of the tiny GPT, written out from its operations (rope, no dropout)."""
    bt = B * T
    per_layer = (
        2 * bt * D * 4  # the two norms' inputs: the float32 residual stream
        + 2 * 2 * bt * 4  # their mean and 1/std
        + (4 if autocast else 2) * bt * D * low  # matmul inputs: q, k, v (3 casts) and fc1
        + 4 * bt * D * low  # q, k, v, attention output
        + H * bt * 4  # log-sum-exp
        + 2 * bt * FF * low  # fc1 output, GELU output
        + ((4 * D * D + 2 * D * FF) * low if autocast else 0)  # weight copies
    )
    final = bt * D * 4 + 2 * bt * 4 + bt * D * low  # the final norm and the head's input
    once = bt * V * 4 + 2 * bt * 8 + T * (D // H // 2) * 8  # log-probs, ids, rotary table
    return L * per_layer + final + once + (V * D * low if autocast else 0)


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16, torch.float16])
def test_activation_terms_add_up_to_the_count_by_hand(autocast_dtype):
    cfg = config(position="rope", bias=False)
    low = 2 if autocast_dtype else 4
    est = memory.budget(cfg, B, T, autocast_dtype=autocast_dtype)
    assert est.activations == by_hand(low, autocast_dtype is not None)
    assert est.activations == sum(term.bytes for term in est.activation_terms)
    assert {term.dtype for term in est.activation_terms} >= {torch.float32, torch.int64}


def test_state_is_16_bytes_a_parameter_in_both_precisions():
    cfg = config()
    n = transformer.count_parameters(transformer.GPT(cfg))
    for autocast_dtype in (None, torch.bfloat16):
        est = memory.budget(cfg, 1, autocast_dtype=autocast_dtype)
        assert (est.weights, est.gradients, est.adam_moments) == (4 * n, 4 * n, 8 * n)
    assert memory.budget(transformer.GPT(cfg), 1).weights == 4 * n  # a model works too


def test_learned_positions_and_dropout_add_their_terms():
    names = lambda cfg: {t.name: t for t in memory.activation_terms(cfg, B, T)}  # noqa: E731
    learned = names(config(position="learned"))
    assert learned["position indices"].bytes == T * 8
    masks = names(config(dropout=0.1))["dropout masks"]
    assert masks.dtype == torch.bool and masks.bytes == (2 * L + 1) * B * T * D
    assert "dropout masks" not in learned


def test_activations_grow_with_the_batch_and_the_state_does_not():
    cfg = config(position="rope")
    one, four = memory.budget(cfg, 1), memory.budget(cfg, 4)
    rotary = cfg.block_size * (D // H // 2) * 8  # one table, whatever the batch
    assert four.activations - rotary == 4 * (one.activations - rotary)
    assert four.weights == one.weights and four.adam_moments == one.adam_moments


# --------------------------------------------------------------------------- the measurement


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("kw", [dict(position="rope", bias=False), dict(position="learned")])
def test_budget_is_within_25_percent_of_a_measured_step(autocast_dtype, kw):
    torch.manual_seed(0)
    cfg = config(**kw)
    model = transformer.GPT(cfg)
    got = memory.measure(model, *batch(), autocast_dtype=autocast_dtype)
    est = memory.budget(cfg, B, T, autocast_dtype=autocast_dtype)
    ratios = memory.compare(est, got)
    assert all(abs(r - 1) <= 0.25 for r in ratios.values()), ratios
    n = transformer.count_parameters(model)  # the optimizer state is exact
    assert (got.weights, got.gradients, got.adam_moments) == (4 * n, 4 * n, 8 * n)


def test_measure_uses_the_given_optimizer_and_restores_the_mode():
    model = transformer.GPT(config()).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # no moments
    got = memory.measure(model, *batch(), optimizer=opt)
    assert got.adam_moments == 0 and got.gradients == got.weights
    assert not model.training


def test_saved_tensors_dedupes_storages_and_skips_excluded():
    w = torch.randn(5, 7, requires_grad=True)
    x = torch.randn(3, 5, requires_grad=True)
    with memory.SavedTensors([w]) as saved:
        h = x @ w  # saves x and w
        y = (h * h).sum()  # saves h twice: one storage
        z = (h.t() * 2.0).sum()  # a view of h saves nothing new here
    (y + z).backward()  # the graph still works
    assert saved.bytes == x.numel() * 4 + h.numel() * 4
    assert saved.by_dtype() == {"float32": saved.bytes}


def test_table_shows_every_component_and_the_ratio():
    cfg = config()
    est = memory.budget(cfg, B, T)
    text = memory.table(est, est)
    for name in (*memory.COMPONENTS, "total"):
        assert name in text
    assert text.count(" 1.000 ") == 5


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_the_argument_named():
    cfg = config()
    with pytest.raises(TypeError, match="GPTConfig or a GPT"):
        memory.budget("gpt", 4)
    with pytest.raises(ValueError, match="batch_size"):
        memory.budget(cfg, 0)
    with pytest.raises(ValueError, match="seq_len"):
        memory.budget(cfg, 1, cfg.block_size + 1)
    with pytest.raises(ValueError, match="autocast_dtype"):
        memory.budget(cfg, 1, autocast_dtype=torch.float32)
    with pytest.raises(ValueError, match="fast=True"):
        memory.budget(config(fast=False), 1)
    with pytest.raises(ValueError, match="same shape|ids' shape"):
        memory.measure(transformer.GPT(cfg), torch.zeros(2, 3).long(), torch.zeros(2, 4).long())
    with pytest.raises(TypeError, match="MemoryBudget"):
        memory.compare(memory.budget(cfg, 1), {"weights": 1})


def test_todays_block_options_are_refused_not_estimated_wrong():
    """The activation terms model the 2019 block; RMS norm, a gated MLP, QK-norm or grouped
    key/value heads save other tensors, so the estimate says so instead of a wrong number."""
    for kw, shown in [
        (dict(norm="rms"), "norm='rms'"),
        (dict(mlp="gated", activation="silu"), "mlp='gated'"),
        (dict(qk_norm=True), "qk_norm=True"),
        (dict(n_kv_heads=2), "n_kv_heads=2"),
    ]:
        with pytest.raises(ValueError, match=f"models the 2019 block.*sets {shown}"):
            memory.budget(config(**kw), 1)
    assert memory.budget(config(n_kv_heads=H), 1) == memory.budget(config(), 1)  # all heads
