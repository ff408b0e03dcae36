"""Notebook 13's exercises: one cached attention step, int8 quantization with a scale per row,
and the acceptance rule of greedy speculative decoding."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib import inference
from course_lib.check import Verdict, case, check, mistake

# ====================================================================== 1: a cached step


def _cached_step(q, k_cache, v_cache, k_new, v_new):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return F.scaled_dot_product_attention(q, k, v)


def _cache_only(q, k_cache, v_cache, k_new, v_new):
    return F.scaled_dot_product_attention(q, k_cache, v_cache)


def _is_causal(q, k_cache, v_cache, k_new, v_new):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _scaled_by_d(q, k_cache, v_cache, k_new, v_new):
    k, v = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return F.scaled_dot_product_attention(q, k, v, scale=1 / q.shape[-1])


def cached_attention_step(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(q (B, H, 1, d), k_cache (B, H, T, d), v_cache, k_new (B, H, 1, d), v_new) -> the new
    position's attention output (B, H, 1, d), against attention over the cache and itself."""
    g = torch.Generator().manual_seed(13)

    def step(b: int, h: int, t: int, d: int) -> tuple[torch.Tensor, ...]:
        q, k_new, v_new = (torch.randn(b, h, 1, d, generator=g) for _ in range(3))
        k_cache, v_cache = (torch.randn(b, h, t, d, generator=g) for _ in range(2))
        return q, k_cache, v_cache, k_new, v_new

    return check(
        fn,
        reference=_cached_step,
        cases=[
            case(*step(1, 1, 4, 8), label="one head, 4 cached positions"),
            case(*step(2, 4, 9, 16), label="batch 2, 4 heads, 9 cached"),
            case(*step(1, 2, 1, 4), label="one cached position"),
        ],
        mistakes=[
            mistake(
                "the new position left out",
                "the new token may attend to itself: append k_new and v_new to the cache "
                "before attending (torch.cat along the sequence dimension, -2)",
                _cache_only,
            ),
            mistake(
                "is_causal=True",
                "with one query and T + 1 keys, PyTorch's causal mask is aligned top-left: "
                "the query sees only the first key. The newest position may see every cached "
                "one, so no mask is needed",
                _is_causal,
            ),
            mistake(
                "scores divided by d",
                f"scale the scores by 1 / sqrt(d) (for d = 16: {1 / math.sqrt(16)}), not 1 / d",
                _scaled_by_d,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== 2: int8 rows


def _per_tensor(w):
    q, scale = inference.quantize_per_tensor(w)
    return q, scale.expand(w.shape[0], 1)


def _per_column(w):
    scale = w.abs().amax(dim=0, keepdim=True) / 127.5
    return torch.round(w * (1.0 / scale)).clamp(-128, 127).to(torch.int8), scale


def _truncated(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 127.5
    return (w * (1.0 / scale)).clamp(-128, 127).to(torch.int8), scale


def _not_clamped(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 127.5
    return torch.round(w * (1.0 / scale)).to(torch.int8), scale


def _divided(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 127.5
    return torch.round(w / scale).clamp(-128, 127).to(torch.int8), scale


def quantize_rows(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(w (out, in) float32) -> (q (out, in) int8, scale (out, 1) float32), against
    inference.quantize_per_channel."""
    g = torch.Generator().manual_seed(14)
    rows = torch.randn(6, 10, generator=g) * torch.tensor([0.01, 0.1, 1.0, 3.0, 0.5, 0.02])[:, None]
    at_max = torch.tensor([[1.0, -0.5, 0.25], [-2.0, 2.0, 0.0]])
    return check(
        fn,
        reference=inference.quantize_per_channel,
        cases=[
            case(torch.randn(4, 8, generator=g), label="4 rows of similar size"),
            case(rows, label="rows of very different sizes"),
            case(at_max, label="rows that reach +max|w|"),
        ],
        mistakes=[
            mistake(
                "one scale for the whole matrix",
                "take max|w| of each row (amax over dim=1, keepdim=True): a small row then "
                "gets a small scale of its own",
                _per_tensor,
            ),
            mistake(
                "a scale per column",
                "each output row (dim 0 of an nn.Linear's weight) gets its scale: amax over "
                "dim=1, the inputs",
                _per_column,
            ),
            mistake(
                "truncated instead of rounded",
                ".to(torch.int8) cuts toward zero; torch.round first, so the error is at most "
                "half a step",
                _truncated,
            ),
            mistake(
                "divided by the scale",
                "multiply by the reciprocal, w * (1.0 / scale), as torchao does: w / scale "
                "rounds the other way in the odd weight that lands a hair from a half step, "
                "and this check compares with torchao's int8 values bit for bit",
                _divided,
            ),
            mistake(
                "not clamped",
                "+max|w| / scale is 127.5, which rounds to 128: int8 holds -128..127, and 128 "
                "wraps to -128. Clamp to [-128, 127] before the cast",
                _not_clamped,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== 3: acceptance


def _all_agreements(draft, target):
    k = draft.shape[0]
    n = int((draft == target[:k]).sum())
    return n, int(target[n])


def _draft_token_next(draft, target):
    n, token = inference.accept_prefix(draft, target)
    return n, int(draft[n]) if n < draft.shape[0] else token


def _no_bonus(draft, target):
    n, _ = inference.accept_prefix(draft, target)
    k = draft.shape[0]
    return (n, int(target[n])) if n < k else (k - 1, int(target[k - 1]))


def accept(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(draft_tokens (k,), target_tokens (k + 1,)) -> (n accepted, next token), against
    inference.accept_prefix."""
    t = torch.tensor
    return check(
        fn,
        reference=inference.accept_prefix,
        cases=[
            case(t([5, 6, 7]), t([5, 6, 9, 4]), label="the third proposal rejected"),
            case(t([5, 6, 7]), t([5, 6, 7, 8]), label="all three accepted"),
            case(t([1, 6, 7]), t([5, 6, 7, 8]), label="the first rejected, later ones agree"),
            case(t([3]), t([3, 2]), label="k = 1, accepted"),
        ],
        mistakes=[
            mistake(
                "every agreement counted",
                "a proposal counts only if all before it were accepted: after the first "
                "disagreement the draft continued from a token the target did not choose",
                _all_agreements,
            ),
            mistake(
                "the draft's token at the disagreement",
                "at the first disagreement the target's own token, target_tokens[n], comes "
                "next: it is what greedy decoding of the target picks there",
                _draft_token_next,
            ),
            mistake(
                "no bonus token",
                "when all k proposals agree, the pass has also scored the position after them: "
                "target_tokens[k] is a free extra token (n = k)",
                _no_bonus,
            ),
        ],
        quiet=quiet,
    )
