"""Notebook 11's exercises: the character error rate, BLEU's clipped n-gram precision, and one
step of beam search."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from course_lib import metrics, seq2seq
from course_lib.check import Verdict, case, check, mistake


def _mean_line_cer(predictions, references):
    rates = [
        metrics.edit_distance(p, r) / max(1, len(r))
        for p, r in zip(predictions, references, strict=True)
    ]
    return sum(rates) / len(rates)


def _cer_over_predictions(predictions, references):
    edits = sum(metrics.edit_distance(p, r) for p, r in zip(predictions, references, strict=True))
    return edits / sum(len(p) for p in predictions)


def _position_mismatches(predictions, references):
    edits = 0
    for p, r in zip(predictions, references, strict=True):
        edits += sum(a != b for a, b in zip(p, r, strict=False)) + abs(len(p) - len(r))
    return edits / sum(len(r) for r in references)


def cer(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(predictions, references) -> float, against metrics.character_error_rate."""
    return check(
        fn,
        reference=metrics.character_error_rate,
        cases=[
            case(["Here, master"], ["Here, master"], label="a perfect line"),
            case(["haue"], ["have"], label="one substitution"),
            case(["my selfe"], ["myself"], label="a space and an e too many"),
            case(
                ["Heere Master: What cheere?", "I haue", "vnto"],
                ["Here, master: what cheer?", "I have", "unto"],
                label="three lines of different lengths",
            ),
            case(
                ["ab", "a long line that is right"],
                ["b", "a long line that is right"],
                label="a short wrong line and a long right one",
            ),
        ],
        mistakes=[
            mistake(
                "the mean of the per-line rates",
                "the corpus CER divides the summed edits by the summed reference lengths, so a "
                "long line weighs more than a short one; averaging per-line rates does not",
                _mean_line_cer,
            ),
            mistake(
                "divided by the predictions' length",
                "divide by the number of characters in the references, whatever was predicted",
                _cer_over_predictions,
            ),
            mistake(
                "characters compared position by position",
                "one missing character shifts every later one: count the fewest insertions, "
                "deletions and substitutions (the edit distance), not positions that differ",
                _position_mismatches,
            ),
        ],
        quiet=quiet,
    )


def _unclipped(prediction, reference, n):
    ref = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
    grams = [tuple(prediction[i : i + n]) for i in range(len(prediction) - n + 1)]
    return sum(g in ref for g in grams), len(grams)


def _over_reference(prediction, reference, n):
    matches, _ = metrics.ngram_matches(prediction, reference, n)
    return matches, max(0, len(reference) - n + 1)


def _distinct(prediction, reference, n):
    ref = {tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)}
    grams = {tuple(prediction[i : i + n]) for i in range(len(prediction) - n + 1)}
    return len(grams & ref), max(0, len(prediction) - n + 1)


def ngram_matches(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(prediction words, reference words, n) -> (matches, total), against
    metrics.ngram_matches."""
    ref = "here , master : what cheer ?".split()
    return check(
        fn,
        reference=metrics.ngram_matches,
        cases=[
            case(ref, ref, 1, label="a perfect prediction, unigrams"),
            case("heere , master : what cheere ?".split(), ref, 2, label="two words misspelt"),
            case("the the the the".split(), "the cat".split(), 1, label="a word repeated"),
            case(
                "to be or not to be".split(),
                "to be or not to be".split(),
                2,
                label="a bigram that occurs twice",
            ),
            case("what cheer".split(), ref, 4, label="shorter than n"),
            case("a b a b a".split(), "a b c a".split(), 2, label="repeats on both sides"),
        ],
        mistakes=[
            mistake(
                "counts that are not clipped",
                "a predicted n-gram may match only as often as the reference holds it: take "
                "min(predicted count, reference count) for each n-gram",
                _unclipped,
            ),
            mistake(
                "the reference's n-grams as the total",
                "precision divides by the n-grams the prediction made, len(prediction) - n + 1",
                _over_reference,
            ),
            mistake(
                "distinct n-grams only",
                "count every occurrence (a Counter), clipped, not the set of distinct n-grams",
                _distinct,
            ),
        ],
        quiet=quiet,
    )


def _lp_top(log_probs, scores, beam_width):
    best, flat = log_probs.flatten().topk(min(beam_width, log_probs.numel()))
    v = log_probs.shape[1]
    return best + scores[flat // v], flat // v, flat % v


def _ignore_history(log_probs, scores, beam_width):
    """Ranks by the next character's log-probability alone (returns the true summed scores of
    what it picked)."""
    return _lp_top(log_probs, scores, beam_width)


def _best_per_beam(log_probs, scores, beam_width):
    best, token = (scores[:, None] + log_probs).max(dim=1)  # (K,)
    order = best.argsort(descending=True)[:beam_width]
    return best[order], order, token[order]


def _flat_token(log_probs, scores, beam_width):
    total = scores[:, None] + log_probs
    best, flat = total.flatten().topk(min(beam_width, total.numel()))
    return best, flat // log_probs.shape[1], flat


def beam_step(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(log_probs (K, V), scores (K,), beam_width) -> (new_scores, beam, token), against
    seq2seq.beam_step."""
    g = torch.Generator().manual_seed(11)

    def log_probs(k: int, v: int) -> torch.Tensor:
        return torch.randn(k, v, generator=g).mul(2).log_softmax(dim=-1)

    one_strong = torch.full((2, 5), -6.0)
    one_strong[0, :3] = torch.tensor([-0.1, -0.9, -1.2])
    one_strong[1, :] = torch.tensor([-1.5, -1.6, -1.7, -1.8, -1.9])
    return check(
        fn,
        reference=seq2seq.beam_step,
        cases=[
            case(log_probs(1, 6), torch.zeros(1), 3, label="the first step: one beam (<s>)"),
            case(log_probs(3, 7), torch.tensor([-1.0, -2.5, -4.0]), 3, label="3 beams, width 3"),
            case(
                one_strong,
                torch.tensor([-3.0, -0.2]),
                3,
                label="the best continuations are not the best next characters",
            ),
            case(
                one_strong, torch.tensor([-0.1, -5.0]), 3, label="one beam gives every continuation"
            ),
            case(log_probs(2, 4), torch.tensor([-0.5, -0.7]), 5, label="width 5 from 2 beams"),
        ],
        mistakes=[
            mistake(
                "ranked by the next character alone",
                "a continuation's score is its beam's score plus the character's "
                "log-probability: add scores[:, None] before taking the top k",
                _ignore_history,
            ),
            mistake(
                "the best continuation of each beam",
                "take the top k over all K x V continuations together: two of the best may "
                "extend the same beam, and another beam may have none",
                _best_per_beam,
            ),
            mistake(
                "the flat index as the token",
                "after topk over the flattened (K * V) scores, the beam is index // V and the "
                "token index % V",
                _flat_token,
            ),
        ],
        quiet=quiet,
    )
