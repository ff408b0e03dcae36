"""Notebook 11's answer key (course_lib.exercises.nb11): the reference passes, and wrong answers
written as a learner would write them are rejected with a hint that names the mistake."""

from __future__ import annotations

from exercise_helpers import learner

from course_lib import metrics as M
from course_lib import seq2seq
from course_lib.exercises import nb11

EDIT_DISTANCE = """
def dist(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = row
    return prev[-1]
"""


def test_exercise_cer_wrong_answers_are_named():
    sig = "def cer(predictions, references):"
    right, per_line, over_pred, positions = (
        nb11.cer(learner(sig, EDIT_DISTANCE + body), quiet=True).message
        for body in [
            "edits = sum(dist(p, r) for p, r in zip(predictions, references))\n"
            "return edits / sum(len(r) for r in references)",
            "rates = [dist(p, r) / len(r) for p, r in zip(predictions, references)]\n"
            "return sum(rates) / len(rates)",
            "edits = sum(dist(p, r) for p, r in zip(predictions, references))\n"
            "return edits / sum(len(p) for p in predictions)",
            "edits = 0\n"
            "for p, r in zip(predictions, references):\n"
            "    edits += sum(x != y for x, y in zip(p, r)) + abs(len(p) - len(r))\n"
            "return edits / sum(len(r) for r in references)",
        ]
    )
    assert right == "cer: all 5 cases pass. Well done!"
    assert "hint: this looks like the mean of the per-line rates" in per_line
    assert "hint: this looks like divided by the predictions' length" in over_pred
    assert "hint: this looks like characters compared position by position" in positions


def test_exercise_ngram_matches_wrong_answers_are_named():
    sig = "def ngram_matches(prediction, reference, n):"
    grams = "from collections import Counter\n"
    grams += "def grams(w):\n    return Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))\n"
    right, unclipped, over_ref, distinct = (
        nb11.ngram_matches(learner(sig, grams + body), quiet=True).message
        for body in [
            "ref = grams(reference)\n"
            "hits = sum(min(c, ref[g]) for g, c in grams(prediction).items())\n"
            "return hits, max(0, len(prediction) - n + 1)",
            "ref = grams(reference)\n"
            "hits = sum(c for g, c in grams(prediction).items() if g in ref)\n"
            "return hits, max(0, len(prediction) - n + 1)",
            "ref = grams(reference)\n"
            "hits = sum(min(c, ref[g]) for g, c in grams(prediction).items())\n"
            "return hits, max(0, len(reference) - n + 1)",
            "hits = len(set(grams(prediction)) & set(grams(reference)))\n"
            "return hits, max(0, len(prediction) - n + 1)",
        ]
    )
    assert right == "ngram_matches: all 6 cases pass. Well done!"
    assert "hint: this looks like counts that are not clipped" in unclipped
    assert "hint: this looks like the reference's n-grams as the total" in over_ref
    assert "hint: this looks like distinct n-grams only" in distinct


def test_exercise_beam_step_wrong_answers_are_named():
    sig = "def beam_step(log_probs, scores, beam_width):"
    right, no_history, per_beam, flat = (
        nb11.beam_step(learner(sig, body), quiet=True).message
        for body in [
            "total = scores[:, None] + log_probs\n"
            "best, idx = total.flatten().topk(min(beam_width, total.numel()))\n"
            "V = log_probs.shape[1]\n"
            "return best, idx // V, idx % V",
            "best, idx = log_probs.flatten().topk(min(beam_width, log_probs.numel()))\n"
            "V = log_probs.shape[1]\n"
            "return best + scores[idx // V], idx // V, idx % V",
            "best, token = (scores[:, None] + log_probs).max(dim=1)\n"
            "order = best.argsort(descending=True)[:beam_width]\n"
            "return best[order], order, token[order]",
            "total = scores[:, None] + log_probs\n"
            "best, idx = total.flatten().topk(min(beam_width, total.numel()))\n"
            "return best, idx // log_probs.shape[1], idx",
        ]
    )
    assert right == "beam_step: all 5 cases pass. Well done!"
    assert "hint: this looks like ranked by the next character alone" in no_history
    assert "hint: this looks like the best continuation of each beam" in per_beam
    assert "hint: this looks like the flat index as the token" in flat


def test_the_keys_accept_the_library_functions():
    assert nb11.cer(M.character_error_rate, quiet=True).passed
    assert nb11.ngram_matches(M.ngram_matches, quiet=True).passed
    assert nb11.beam_step(seq2seq.beam_step, quiet=True).passed
