"""Notebook 12's answer key (course_lib.exercises.nb12): the reference passes, and wrong answers
written as a learner would write them are rejected with a hint that names the mistake."""

from __future__ import annotations

from exercise_helpers import learner

from course_lib.exercises import nb12


def test_exercise_weighted_loss_wrong_answers_are_named():
    sig = "def weighted_loss(token_log_probs, start):"
    w = "import torch\nw = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2])\n"
    right, unnormalised, late, mean = (
        nb12.weighted_loss(learner(sig, w + body), quiet=True).message
        for body in [
            "span = token_log_probs[start:start + 5]\n"
            "return -(w[:len(span)] / w.sum() * span).sum()",
            "span = token_log_probs[start:start + 5]\nreturn -(w[:len(span)] * span).sum()",
            "span = token_log_probs[start + 1:start + 6]\n"
            "return -(w[:len(span)] / w.sum() * span).sum()",
            "return -token_log_probs[start:start + 5].mean()",
        ]
    )
    assert right == "weighted_loss: all 3 cases pass. Well done!"
    assert "hint: this looks like weights not normalised" in unnormalised
    assert "hint: this looks like the window one token late" in late
    assert "hint: this looks like a plain mean" in mean


def test_exercise_keep_call_wrong_answers_are_named():
    sig = "def keep(l_empty, l_no_result, l_plus, tau_f):"
    right, empty, no_result, reversed_ = (
        nb12.keep_call(learner(sig, body), quiet=True).message
        for body in [
            "return min(l_empty, l_no_result) - l_plus >= tau_f",
            "return l_empty - l_plus >= tau_f",
            "return l_no_result - l_plus >= tau_f",
            "return l_plus - min(l_empty, l_no_result) >= tau_f",
        ]
    )
    assert right == "keep: all 6 cases pass. Well done!"
    assert "hint: this looks like compared with no call only" in empty
    assert "hint: this looks like compared with the call without its result only" in no_result
    assert "hint: this looks like the sign reversed" in reversed_
