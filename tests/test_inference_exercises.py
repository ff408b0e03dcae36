"""Notebook 13's answer key (course_lib.exercises.nb13): the reference passes, and wrong answers
written as a learner would write them are rejected with a hint that names the mistake."""

from __future__ import annotations

from exercise_helpers import learner

from course_lib.exercises import nb13

TORCH = "import torch\nimport torch.nn.functional as F\n"


def test_exercise_cached_attention_step_wrong_answers_are_named():
    sig = "def step(q, k_cache, v_cache, k_new, v_new):"
    cat = "k = torch.cat([k_cache, k_new], dim=-2)\nv = torch.cat([v_cache, v_new], dim=-2)\n"
    right, cache_only, causal, by_d = (
        nb13.cached_attention_step(learner(sig, TORCH + body), quiet=True).message
        for body in [
            cat + "w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, -1)\n"
            "return w @ v",
            "w = torch.softmax(q @ k_cache.transpose(-2, -1) / q.shape[-1] ** 0.5, -1)\n"
            "return w @ v_cache",
            cat + "return F.scaled_dot_product_attention(q, k, v, is_causal=True)",
            cat + "w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], -1)\nreturn w @ v",
        ]
    )
    assert right == "step: all 3 cases pass. Well done!"
    assert "hint: this looks like the new position left out" in cache_only
    assert "hint: this looks like is_causal=True" in causal
    assert "hint: this looks like scores divided by d" in by_d


def test_exercise_quantize_rows_wrong_answers_are_named():
    sig = "def quantize(w):"
    amax = "scale = w.abs().amax(dim=1, keepdim=True) / 127.5\n"
    right, tensor, column, truncated, unclamped, divided = (
        nb13.quantize_rows(learner(sig, TORCH + body), quiet=True).message
        for body in [
            amax + "return torch.round(w * (1 / scale)).clamp(-128, 127).to(torch.int8), scale",
            "s = w.abs().max() / 127.5\n"
            "q = torch.round(w / s).clamp(-128, 127).to(torch.int8)\n"
            "return q, s.expand(w.shape[0], 1)",
            "scale = w.abs().amax(dim=0, keepdim=True) / 127.5\n"
            "return torch.round(w / scale).clamp(-128, 127).to(torch.int8), scale",
            amax + "return (w * (1 / scale)).clamp(-128, 127).to(torch.int8), scale",
            amax + "return torch.round(w * (1 / scale)).to(torch.int8), scale",
            amax + "return torch.round(w / scale).clamp(-128, 127).to(torch.int8), scale",
        ]
    )
    assert right == "quantize: all 3 cases pass. Well done!"
    assert "hint: this looks like one scale for the whole matrix" in tensor
    assert "hint: this looks like a scale per column" in column
    assert "hint: this looks like truncated instead of rounded" in truncated
    assert "hint: this looks like not clamped" in unclamped
    assert "hint: this looks like divided by the scale" in divided


def test_exercise_accept_wrong_answers_are_named():
    sig = "def accept(draft, target):"
    right, every, draft_token, no_bonus = (
        nb13.accept(learner(sig, body), quiet=True).message
        for body in [
            "n = 0\nwhile n < len(draft) and draft[n] == target[n]:\n    n += 1\n"
            "return n, int(target[n])",
            "n = int((draft == target[: len(draft)]).sum())\nreturn n, int(target[n])",
            "n = 0\nwhile n < len(draft) and draft[n] == target[n]:\n    n += 1\n"
            "return n, int(draft[n]) if n < len(draft) else int(target[n])",
            "n = 0\nwhile n < len(draft) - 1 and draft[n] == target[n]:\n    n += 1\n"
            "return n, int(target[n])",
        ]
    )
    assert right == "accept: all 4 cases pass. Well done!"
    assert "hint: this looks like every agreement counted" in every
    assert "hint: this looks like the draft's token at the disagreement" in draft_token
    assert "hint: this looks like no bonus token" in no_bonus
