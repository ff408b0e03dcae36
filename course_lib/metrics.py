"""Evaluation metrics: perplexity and next-token accuracy for language models, and accuracy,
precision, recall, F1 and the confusion matrix for classification (seed section 2.9).

    perplexity(logits, targets)          # logits (N, V) or (B, T, V), targets (N,) or (B, T)
    next_token_accuracy(logits, targets)
    confusion_matrix(y_true, y_pred, num_classes)   # (C, C): row = true class, column = predicted
    precision_recall_f1(y_true, y_pred, num_classes, average="macro")   # as sklearn's
    macro_f1(y_true, y_pred, num_classes)
    bootstrap_interval(y_true, y_pred, groups, num_classes, metric="accuracy")  # over groups
    edit_distance(a, b); exact_match, character_error_rate, bleu (predictions, references)
    ngram_matches(pred_words, ref_words, n)   # BLEU's clipped n-gram counts; bleu = sacrebleu's

Plain PyTorch; of the course modules only `course_lib.validate` (argument checks) is imported.
Perplexity is exp(mean cross-entropy in nats per token); ignore_index drops padded positions
from both metrics.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

from course_lib.validate import positive_int, same_length

AVERAGES = ("macro", "micro", "weighted", None)


def _check_lm(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a float tensor (..., vocab)")
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.long, torch.int):
        raise TypeError("targets must be an integer tensor of token ids")
    if logits.dim() < 2 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits shape {tuple(logits.shape)} must be targets' {tuple(targets.shape)} "
            "plus a vocabulary axis"
        )
    return logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long()


def _kept(targets: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    keep = torch.ones_like(targets, dtype=torch.bool)
    if ignore_index is not None:
        keep = targets != ignore_index
    if not keep.any():
        raise ValueError("targets hold no position to score (empty, or all ignore_index)")
    return keep


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None
) -> float:
    """Mean cross-entropy in nats per token: logits (..., V), targets (...) -> a float."""
    flat, t = _check_lm(logits, targets)
    keep = _kept(t, ignore_index)
    flat, t = flat[keep], t[keep]
    if t.min() < 0 or t.max() >= flat.shape[-1]:
        raise ValueError(f"targets must lie in [0, {flat.shape[-1]}), got {t.min()}..{t.max()}")
    logp = torch.log_softmax(flat.double(), dim=-1)  # (N, V), float64 for a stable mean
    return float(-logp.gather(1, t[:, None]).mean())


def perplexity(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None
) -> float:
    """exp(mean cross-entropy): the effective number of equally likely next tokens."""
    return math.exp(cross_entropy(logits, targets, ignore_index))


def perplexity_from_loss(loss: float) -> float:
    """exp(loss) for a mean loss in nats per token (e.g. 0.42 nats -> 1.52)."""
    if not isinstance(loss, int | float) or isinstance(loss, bool) or loss < 0:
        raise ValueError(f"loss must be a non-negative mean in nats per token, got {loss!r}")
    return math.exp(loss)


def next_token_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None
) -> float:
    """Fraction of positions whose highest-scoring token is the target (ties: lowest id)."""
    flat, t = _check_lm(logits, targets)
    keep = _kept(t, ignore_index)
    return float((flat[keep].argmax(dim=-1) == t[keep]).double().mean())


def _check_labels(y_true, y_pred, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    num_classes = positive_int(num_classes, "num_classes")
    yt, yp = torch.as_tensor(y_true), torch.as_tensor(y_pred)
    if yt.numel() == 0:
        raise ValueError("y_true is empty: nothing to score")
    if yt.is_floating_point() or yp.is_floating_point():
        raise TypeError("y_true and y_pred must hold integer class labels")
    if yt.dim() != 1 or yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D and equally long, got {tuple(yt.shape)} and "
            f"{tuple(yp.shape)}"
        )
    for name, y in (("y_true", yt), ("y_pred", yp)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    return yt.long(), yp.long()


def accuracy(y_true, y_pred, num_classes: int) -> float:
    """Fraction of labels predicted right; y_true, y_pred (N,) integer labels."""
    yt, yp = _check_labels(y_true, y_pred, num_classes)
    return float((yt == yp).double().mean())


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts: entry [i, j] = how many of true class i were predicted as j."""
    yt, yp = _check_labels(y_true, y_pred, num_classes)
    flat = torch.bincount(yt * num_classes + yp, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _check_zero_division(zero_division: object) -> float:
    if isinstance(zero_division, bool) or not isinstance(zero_division, int | float):
        raise TypeError(
            "zero_division must be 0.0, 1.0 or nan, got "
            f"{type(zero_division).__name__} {zero_division!r}"
        )
    if not (zero_division in (0, 1) or math.isnan(zero_division)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    return float(zero_division)


def precision_recall_f1(
    y_true,
    y_pred,
    num_classes: int,
    average: str | None = "macro",
    zero_division: float = 0.0,
) -> tuple[torch.Tensor | float, torch.Tensor | float, torch.Tensor | float]:
    """Precision, recall and F1, computed as scikit-learn computes them.

    Per class c: precision = tp / predicted, recall = tp / support (true count) and
    F1 = 2 tp / (predicted + support) (the harmonic mean of the two). A ratio 0/0 (a class never
    predicted, never true, or neither) is `zero_division`: 0.0, 1.0 or nan.

    average=None gives (C,) float64 tensors, one entry per class 0..C-1, absent classes
    included: sklearn's `precision_recall_fscore_support(..., labels=range(C), average=None)`.
    The averages are over the classes that occur in y_true or y_pred, as sklearn's defaults
    are: a class that never occurs has no score to average (so a perfect prediction scores 1.0
    even when a class is absent). "macro" is their plain mean, "weighted" their mean weighted
    by support, "micro" the ratios of summed counts (equal to accuracy for single-label data).
    NaN scores (zero_division=nan) are left out of an average, as in sklearn. Equal to
    `sklearn.metrics.precision_recall_fscore_support(y_true, y_pred, average=average,
    zero_division=zero_division)` (tests/test_metrics.py), without its warnings.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    zero_division = _check_zero_division(zero_division)
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diagonal()  # (C,)
    predicted, support = cm.sum(dim=0), cm.sum(dim=1)  # (C,), (C,)

    def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b > 0, a / b.clamp(min=1e-300), torch.full_like(a, zero_division))

    if average == "micro":  # sum over classes first: N predictions, N true labels
        p = r = float(tp.sum() / cm.sum())
        return p, r, p
    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, predicted + support)
    if average is None:
        return precision, recall, f1
    occurs = (predicted + support) > 0  # (C,): the classes sklearn averages over
    weight = torch.ones_like(support) if average == "macro" else support

    def mean(score: torch.Tensor) -> float:
        keep = occurs & ~score.isnan()
        if not keep.any():
            return math.nan
        w = weight[keep] if weight[keep].sum() > 0 else torch.ones_like(weight[keep])
        return float((score[keep] * w).sum() / w.sum())

    return mean(precision), mean(recall), mean(f1)


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """The plain mean of the per-class F1 over the classes that occur (sklearn's f1 "macro")."""
    return precision_recall_f1(y_true, y_pred, num_classes, average="macro")[2]


METRICS = {"accuracy": accuracy, "macro_f1": macro_f1}


def bootstrap_interval(
    y_true,
    y_pred,
    groups,
    num_classes: int,
    metric: str = "accuracy",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(score, low, high): a metric and its percentile bootstrap interval over groups.

    y_true, y_pred (N,) integer labels; groups: N hashable group names (e.g. the play of each
    passage). Each of `n_boot` resamples draws len(set(groups)) groups with replacement and
    scores all their items together, so passages of one play stay together: the interval says
    how much the score moves with *which plays* were tested, the unit the test set was drawn in.
    metric: "accuracy" or "macro_f1". Seeded with a local generator (never the global RNG).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
    score = METRICS[metric]
    yt, yp = _check_labels(y_true, y_pred, num_classes)
    groups = list(groups)
    if len(groups) != len(yt):
        raise ValueError(f"groups must name one group per label: {len(groups)} for {len(yt)}")
    n_boot = positive_int(n_boot, "n_boot")
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    names = sorted(set(groups), key=str)
    index = {name: i for i, name in enumerate(names)}
    members = [[] for _ in names]
    for i, g in enumerate(groups):
        members[index[g]].append(i)
    members = [torch.tensor(m) for m in members]
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(names), (n_boot, len(names)), generator=gen)  # (n_boot, G)
    scores = []
    for row in draws.tolist():
        take = torch.cat([members[g] for g in row])
        scores.append(score(yt[take], yp[take], num_classes))
    s = torch.tensor(scores, dtype=torch.float64)
    tail = (1 - level) / 2
    low, high = torch.quantile(s, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return score(yt, yp, num_classes), low, high


# --------------------------------------------------------------------------- text outputs
# (notebook 11: a system that writes text, scored against one reference text each)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions of one
    character that turn `a` into `b` (dynamic programming, one row at a time)."""
    if not isinstance(a, str) or not isinstance(b, str):
        raise TypeError("edit_distance compares two strings")
    row = list(range(len(b) + 1))  # distances from a[:0] to every prefix of b
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _scored(predictions: Sequence[str], references: Sequence[str]) -> tuple[list, list]:
    for name, texts in (("predictions", predictions), ("references", references)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
        if any(not isinstance(t, str) for t in texts):
            raise TypeError(f"{name} must hold strings only")
    same_length(predictions, references, ("predictions", "references"))
    if len(references) == 0:
        raise ValueError("nothing to score: predictions and references are empty")
    return list(predictions), list(references)


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions identical to their reference, character for character."""
    predictions, references = _scored(predictions, references)
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def character_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus CER: the summed edit distances over the summed reference lengths (can pass 1)."""
    predictions, references = _scored(predictions, references)
    chars = sum(len(r) for r in references)
    if chars == 0:
        raise ValueError("the references hold no characters: CER divides by their length")
    edits = sum(edit_distance(p, r) for p, r in zip(predictions, references, strict=True))
    return edits / chars


_TOKENIZE_13A = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # . and , unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # . and , unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # - after a digit
)


def tokenize_13a(line: str) -> list[str]:
    """The words BLEU counts: mteval-v13a's tokenisation (sacrebleu's default), which splits
    punctuation from words: "Here, master:" -> ["Here", ",", "master", ":"]."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, ch in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, ch)
    line = f" {line} "
    for pattern, repl in _TOKENIZE_13A:
        line = pattern.sub(repl, line)
    return line.split()


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def ngram_matches(prediction: Sequence[str], reference: Sequence[str], n: int) -> tuple[int, int]:
    """(clipped matches, n-grams predicted) of one prediction's words against its reference's.

    A predicted n-gram matches at most as many times as the reference holds it ("clipping"):
    "the the the" against "the cat" has one matching unigram of three, not three."""
    for name, words in (("prediction", prediction), ("reference", reference)):
        if isinstance(words, str) or not isinstance(words, Sequence):
            raise TypeError(f"{name} must be a list of words, got {type(words).__name__}")
    n = positive_int(n, "n")
    ref_counts = _ngrams(list(reference), n)
    pred_counts = _ngrams(list(prediction), n)
    matches = sum(min(count, ref_counts[gram]) for gram, count in pred_counts.items())
    return matches, max(0, len(prediction) - n + 1)


def bleu(predictions: Sequence[str], references: Sequence[str], max_order: int = 4) -> float:
    """Corpus BLEU on a 0-100 scale, as sacrebleu computes it by default (one reference per
    prediction, 13a tokens, "exp" smoothing).

    For n = 1..4: p_n = clipped n-gram matches / n-grams predicted, summed over the corpus (a
    predicted n-gram counts at most as often as the reference has it). BLEU = BP * exp(mean
    log p_n), with the brevity penalty BP = exp(1 - ref_len / pred_len) when the predictions
    are shorter in words, else 1. Smoothing: a p_n with no match becomes 1 / (2^m * total),
    m counting such orders so far."""
    predictions, references = _scored(predictions, references)
    max_order = positive_int(max_order, "max_order")
    correct, total = [0] * max_order, [0] * max_order
    pred_len = ref_len = 0
    for p, r in zip(predictions, references, strict=True):
        pw, rw = tokenize_13a(p), tokenize_13a(r)
        pred_len, ref_len = pred_len + len(pw), ref_len + len(rw)
        for n in range(1, max_order + 1):
            matches, predicted = ngram_matches(pw, rw, n)
            correct[n - 1] += matches
            total[n - 1] += predicted
    precisions, smooth = [0.0] * max_order, 1.0
    for n in range(max_order):
        if total[n] == 0:
            break
        if correct[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    if pred_len == 0:
        return 0.0
    bp = 1.0 if pred_len >= ref_len else math.exp(1 - ref_len / pred_len)
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]
    return bp * math.exp(sum(logs) / max_order)


def scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """{"exact match": ..., "CER": ..., "BLEU": ...} of one system."""
    return {
        "exact match": exact_match(predictions, references),
        "CER": character_error_rate(predictions, references),
        "BLEU": bleu(predictions, references),
    }
