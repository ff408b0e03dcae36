"""Softmax, log-softmax and cross-entropy, written out and proven equal to PyTorch.

    p = softmax(logits)                                   # logits: (..., C) -> (..., C)
    loss = cross_entropy(logits, target)                  # logits (N, C), target (N,) ids
    loss = cross_entropy(logits.transpose(1, 2), target)  # logits (B, T, C) -> (B, C, T)
    ppl = perplexity(loss)                                # exp(mean negative log-likelihood)
    baseline_losses(train_ids, val_ids, V)  # {"uniform": ln V, "unigram": .., "bigram": ..}

`cross_entropy` takes the same arguments as `F.cross_entropy` with class-index targets
(`ignore_index`, `reduction`, `label_smoothing`; no class weights) and the tests prove it equal,
forward and backward. Everything goes through the stable `log_softmax` (the log-sum-exp trick),
so logits of 1e4 give finite losses and gradients. `baseline_losses` scores three models that
need no training (uniform, add-k unigram and bigram counts): the yardstick drawn beside every loss
in the course. This module imports no other course module but `validate` (argument checks).
"""

from __future__ import annotations

import math

import torch

from course_lib.validate import positive_int

REDUCTIONS = ("none", "mean", "sum")


def _check_float(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """log(sum(exp(x))) along `dim` without overflow: m + log(sum(exp(x - m))), m = max(x).

    x: (..., C, ...) -> the same shape without `dim` (or with size 1 there when keepdim).
    A slice that is all -inf gives -inf (the log of an empty sum), as torch.logsumexp does.
    """
    _check_float(x, "x")
    m = x.amax(dim=dim, keepdim=True).detach()  # the shift; it cancels, so no gradient flows
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf (or inf) slices
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log softmax(logits) = logits - logsumexp(logits): (..., C) -> (..., C), never -inf by
    underflow (a logit 200 below the largest gives -200, not log(0)).

    Computed as (logits - m) - log(sum(exp(logits - m))): the same value as logits - (m + ...),
    but without the cancellation of two large numbers when the logits are large.
    """
    _check_float(logits, "logits")
    m = logits.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    shifted = logits - m  # <= 0: subtract before the log, so the largest entry keeps its digits
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """exp(logits - max) / sum(exp(logits - max)) along `dim`: (..., C) -> (..., C).

    Subtracting the maximum changes nothing mathematically (it cancels in the ratio) and keeps
    every exp() in (0, 1], so large logits do not overflow to inf / inf = nan.
    """
    _check_float(logits, "logits")
    shifted = logits - logits.amax(dim=dim, keepdim=True).detach()
    e = torch.exp(shifted)
    return e / e.sum(dim=dim, keepdim=True)


def _class_dim(logits: torch.Tensor) -> int:
    return 0 if logits.dim() == 1 else 1


def _check_target(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor of class ids, got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target must hold integer class ids (torch.long), got {target.dtype}; "
            "probability targets are not supported"
        )
    if logits.dim() == 0:
        raise ValueError("logits must have a class dimension: (C,), (N, C) or (N, C, d1, ...)")
    c = _class_dim(logits)
    expected = logits.shape[:c] + logits.shape[c + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}: expected {tuple(expected)} (logits without the class "
            f"dimension {c}); for (B, T, C) logits pass logits.transpose(1, 2)"
        )
    n_classes = logits.shape[c]
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bad.any():
        value = int(target[bad].flatten()[0])
        raise ValueError(
            f"target holds {value}, outside [0, {n_classes}) for {n_classes} classes "
            f"and not ignore_index={ignore_index}"
        )


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy between softmax(logits) and the true classes, like `F.cross_entropy`.

    logits: (N, C), (N, C, d1, ...) or (C,); target: (N,), (N, d1, ...) or () integer ids in
    [0, C), or ignore_index (padding: no loss, no gradient, not counted by the mean).

    Per position, with log-probabilities lp = log_softmax(logits) and eps = label_smoothing:
        loss = (1 - eps) * (-lp[target]) + eps * mean_c(-lp[c])
    which is -sum_c q_c lp_c for the smoothed target q = (1 - eps) * one_hot + eps / C
    (eps = 0: the negative log-likelihood of the true class).
    reduction "none" returns target's shape; "sum" the total; "mean" the total divided by the
    number of non-ignored positions (nan when every position is ignored, as in PyTorch).
    """
    _check_float(logits, "logits")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float):
        raise TypeError(f"label_smoothing must be a number, got {type(label_smoothing).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    _check_target(logits, target, ignore_index)

    c = _class_dim(logits)
    lp = log_softmax(logits, dim=c)  # (N, C, ...)
    keep = target != ignore_index  # (N, ...)
    safe = torch.where(keep, target, torch.zeros_like(target)).long()  # any valid id
    nll = -lp.gather(c, safe.unsqueeze(c)).squeeze(c)  # (N, ...): -log p(true class)
    loss = nll
    if label_smoothing > 0:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (-lp.mean(dim=c))
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum()


def cross_entropy_grad(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """d(sum of cross_entropy)/d(logits) in closed form: softmax(logits) - q, shape (N, C).

    logits (N, C), target (N,) ids; q is the (smoothed) one-hot target. Divide by N for the
    gradient of the mean.
    """
    _check_float(logits, "logits")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    _check_target(logits, target, ignore_index=-100)
    if (target < 0).any():
        raise ValueError("target must hold class ids in [0, C): ignore_index is not supported")
    n_classes = logits.shape[1]
    q = torch.nn.functional.one_hot(target.long(), n_classes).to(logits.dtype)
    q = (1.0 - label_smoothing) * q + label_smoothing / n_classes
    return softmax(logits, dim=1) - q


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """exp(mean negative log-likelihood in nats): the effective number of equally likely choices.

    A model that spreads probability evenly over V tokens has mean NLL ln V and perplexity V.
    """
    if isinstance(mean_nll, torch.Tensor):
        if mean_nll.numel() != 1:
            raise ValueError(
                f"mean_nll must be one number (a mean), got shape {tuple(mean_nll.shape)}"
            )
        mean_nll = mean_nll.item()
    if isinstance(mean_nll, bool) or not isinstance(mean_nll, int | float):
        raise TypeError(f"mean_nll must be a number, got {type(mean_nll).__name__}")
    if math.isnan(mean_nll) or mean_nll < 0:
        raise ValueError(f"mean_nll must be >= 0 (a mean of -log p), got {mean_nll}")
    return math.exp(mean_nll)


# --------------------------------------------------------------------------- baselines

BASELINE_K = 0.1  # add-k smoothing of the count baselines (see `baseline_losses`)


def _id_tensor(ids: object, vocab_size: int, name: str) -> torch.Tensor:
    """`ids` (a list, 1-d tensor or array of integer token ids) as a 1-d int64 tensor in
    [0, vocab_size), with at least 2 ids; TypeError or ValueError naming `name` otherwise."""
    if isinstance(ids, str | bytes) or not hasattr(ids, "__len__"):
        raise TypeError(f"{name} must be a sequence of integer token ids, got {type(ids).__name__}")
    if getattr(ids, "ndim", 1) != 1:  # a tensor or array: len() of a 0-d one fails
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(ids.shape)}")
    if len(ids) < 2:
        raise ValueError(f"{name} must hold at least 2 token ids (one pair), got {len(ids)}")
    try:
        t = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"{name} must hold integer token ids: {e}") from None
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must hold integer token ids, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds id {bad}, not in this vocabulary of {vocab_size}")
    return t.long()


def _smoothing(k: object) -> float:
    if isinstance(k, bool) or not isinstance(k, int | float):
        raise TypeError(f"k must be a number (the add-k pseudo-count), got {type(k).__name__}")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"k must be a finite number > 0 (else unseen tokens get p = 0), got {k}")
    return float(k)


def _bigram_nll(
    train: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor, v: int, k: float
) -> torch.Tensor:
    """-log p(nxt | prev), (M,) float64, from add-k smoothed pair counts of `train`.

    p(b | a) = (count(a, b) + k) / (count(a, .) + k V), counting the N - 1 adjacent pairs of
    `train`. Only the pairs that occur are stored (sorted flat indices a * V + b and their
    counts), never a (V, V) table: a 50,257-token vocabulary needs memory for the pairs that
    occur, not for 50,257^2 of them.
    """
    keys, counts = torch.unique(train[:-1] * v + train[1:], return_counts=True)  # sorted
    query = prev * v + nxt  # (M,)
    at = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    pair = torch.where(keys[at] == query, counts[at], 0).double()  # count(prev, nxt)
    row = torch.bincount(train[:-1], minlength=v).double()[prev]  # count(prev, .)
    return -((pair + k) / (row + k * v)).log()


def baseline_losses(
    train_ids: object, eval_ids: object, vocab_size: int, k: float = BASELINE_K
) -> dict[str, float]:
    """Cross-entropy (nats per token) of three models that need no training, on `eval_ids`.

    train_ids: (N,) ids the counts are fitted on; eval_ids: (M,) ids of the split to score;
    both lists, 1-d tensors or arrays of integer ids in [0, vocab_size), at least 2 long.
    Returns {"uniform": ln V, "unigram": ..., "bigram": ...}, each the mean of -log p over the
    same M - 1 positions eval_ids[1:] (every token that has a previous one), so the three are
    comparable with each other and with a model scored on those targets:

    - uniform: p = 1 / V for every token, loss ln V exactly (what an untrained model starts at);
    - unigram: each token's smoothed frequency, ignoring context, (count(b) + k) / (N + k V);
    - bigram: the smoothed frequency of each token after the previous one,
      (count(a, b) + k) / (count(a, .) + k V) over the N - 1 adjacent pairs of train_ids
      (a previous token never seen in training gets the uniform 1 / V).

    k = 0.1 by default (add-k, Lidstone smoothing): every count, seen or not, gets k pseudo-counts,
    so an unseen token or pair costs a finite number of nats. k = 1 (add-one, Laplace) gives
    each of the V^2 possible pairs as much weight as a real observation, which over-smooths a
    small training text (about 0.05 nats worse than k = 0.1 on 24,000 characters).
    A model worth training must beat all three; beating the bigram is the first real test.
    """
    vocab_size = positive_int(vocab_size, "vocab_size")
    k = _smoothing(k)
    train = _id_tensor(train_ids, vocab_size, "train_ids")
    target = _id_tensor(eval_ids, vocab_size, "eval_ids")
    prev, nxt = target[:-1], target[1:]  # (M - 1,) each
    unigram = torch.bincount(train, minlength=vocab_size).double() + k  # (V,) smoothed counts
    return {
        "uniform": math.log(vocab_size),
        "unigram": -(unigram[nxt] / unigram.sum()).log().mean().item(),
        "bigram": _bigram_nll(train, prev, nxt, vocab_size, k).mean().item(),
    }
