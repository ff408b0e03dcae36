"""Notebook 14's answer key (course_lib.exercises.nb14): the reference passes, and wrong answers
written as a learner would write them are rejected with a hint that names the mistake."""

from __future__ import annotations

from exercise_helpers import learner

from course_lib.exercises import nb14


def test_exercise_exposure_wrong_answers_are_named():
    sig = "def exposure(secret_nll, candidates_nll):"
    bits = "return rank, math.log2(len(candidates_nll) + 1) - math.log2(rank)"
    right, from_zero, crashes, reversed_, natural, without = (
        nb14.exposure(learner(sig, body), quiet=True).message
        for body in [
            "rank = 1 + int((candidates_nll < secret_nll).sum())\n" + bits,
            "rank = int((candidates_nll < secret_nll).sum())\n"
            "return rank, math.log2(len(candidates_nll) + 1) - math.log2(max(rank, 1))",
            "rank = int((candidates_nll < secret_nll).sum())\n" + bits,  # log2(0)
            "rank = 1 + int((candidates_nll > secret_nll).sum())\n" + bits,
            "rank = 1 + int((candidates_nll < secret_nll).sum())\n"
            "return rank, math.log(len(candidates_nll) + 1) - math.log(rank)",
            "rank = 1 + int((candidates_nll < secret_nll).sum())\n"
            "return rank, math.log2(len(candidates_nll)) - math.log2(rank)",
        ]
    )
    assert right == "exposure: all 4 cases pass. Well done!"
    assert "hint: this looks like a rank that starts at 0" in from_zero
    assert "exposure raised ValueError: math domain error" in crashes
    assert "hint: this looks like higher NLL counted as likelier" in reversed_
    assert "hint: this looks like natural logarithms" in natural
    assert "hint: this looks like the secret left out of the space" in without


def test_exercise_clip_wrong_answers_are_named():
    sig = "def clip(grads, max_norm):"
    right, batch, to_norm, by_value = (
        nb14.clip(learner(sig, body), quiet=True).message
        for body in [
            "norms = grads.norm(dim=1, keepdim=True)\n"
            "return grads * (max_norm / norms).clamp(max=1.0)",
            "return grads * min(1.0, max_norm / grads.norm().item())",
            "return grads * (max_norm / grads.norm(dim=1, keepdim=True))",
            "return grads.clamp(-max_norm, max_norm)",
        ]
    )
    assert right == "clip: all 3 cases pass. Well done!"
    assert "hint: this looks like the batch clipped as a whole" in batch
    assert "hint: this looks like every row scaled to norm C" in to_norm
    assert "hint: this looks like clipped value by value" in by_value


def test_exercise_average_wrong_answers_are_named():
    sig = "def average(weights, sizes):"
    right, plain, unnormalised, inverse = (
        nb14.average(learner(sig, body), quiet=True).message
        for body in [
            "return (sizes[:, None] * weights).sum(0) / sizes.sum()",
            "return weights.mean(0)",
            "return (sizes[:, None] * weights).sum(0)",
            "w = 1 / sizes\nreturn (w[:, None] * weights).sum(0) / w.sum()",
        ]
    )
    assert right == "average: all 3 cases pass. Well done!"
    assert "hint: this looks like a plain mean" in plain
    assert "hint: this looks like not divided by the total" in unnormalised
    assert "hint: this looks like weighted by 1 / size" in inverse
