"""Embeddings: from token ids to vectors, and what the vectors learn.

Notebook 02 builds this module up. It takes token ids and tensors, never text: the notebook
splits words with `course_lib.tokenizers` and passes the ids in (this module imports no other
course module but the argument checks of `course_lib.validate`).

    >>> from course_lib import embeddings as E
    >>> E.one_hot(ids, V) @ W                  # == W[ids]: an embedding lookup is a matrix product
    >>> vocab = E.build_vocab(words, max_size=3000, min_count=5)
    >>> centers, contexts = E.skipgram_pairs(vocab.encode(words), window=3)
    >>> loss = E.sgns_loss(v_center, u_context, u_negatives)    # word2vec's objective
    >>> E.cosine_similarity_matrix(a, b)       # (n, d), (m, d) -> (n, m)
    >>> E.sinusoidal_encoding(128, 64)         # (positions, dim)
    >>> E.apply_rope(q)                        # rotary position embedding of (..., seq, dim)

Sections: the embedding table; the vocabulary; word2vec (skip-gram with negative sampling);
similarity, neighbours, analogies and a permutation test; PCA; GloVe. The positional encodings
(sinusoidal, RoPE) are `course_lib.positions`, re-exported here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# positional encodings live in course_lib.positions; re-exported for E.sinusoidal_encoding etc.
from course_lib.positions import apply_rope as apply_rope
from course_lib.positions import rope_frequencies as rope_frequencies
from course_lib.positions import rope_rotate as rope_rotate
from course_lib.positions import sinusoidal_encoding as sinusoidal_encoding
from course_lib.validate import int_at_least

# --------------------------------------------------------------------------- input checks


def _tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _ids(name: str, ids: object, num_classes: int | None = None) -> torch.Tensor:
    """Integer token ids, all in [0, num_classes) when num_classes is given."""
    ids = _tensor(name, ids)
    if not ids.numel():  # torch.tensor([]) is float32: an empty list of ids, not a mistake
        return ids.long()
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    if ids.numel() and num_classes is not None:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must be in [0, {num_classes}), got id {bad}")
    return ids


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    return int_at_least(value, name, minimum)


def _matrix(name: str, x: object) -> torch.Tensor:
    x = _tensor(name, x)
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


# --------------------------------------------------------------------------- the embedding table


def one_hot(
    ids: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """One-hot rows: ids (...,) integers in [0, num_classes) -> (..., num_classes) of 0s and 1s.

    `one_hot(ids, V) @ W` (W: (V, d)) picks row ids[i] of W for every i: it equals `W[ids]`,
    which is what `nn.Embedding` computes without building the one-hot matrix.
    """
    num_classes = _positive_int("num_classes", num_classes)
    ids = _ids("ids", ids, num_classes)
    out = torch.zeros(*ids.shape, num_classes, dtype=dtype, device=ids.device)
    return out.scatter_(-1, ids.long().unsqueeze(-1), 1)


def lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The embedding lookup: weight (V, d), ids (...,) in [0, V) -> (..., d), rows of weight.

    The same as `F.embedding(ids, weight)`, with an error that names the bad id.
    """
    weight = _matrix("weight", weight)
    ids = _ids("ids", ids, weight.shape[0])
    return weight[ids.long()]


# --------------------------------------------------------------------------- the vocabulary


@dataclass(frozen=True)
class Vocab:
    """Words by id (most frequent first) and their corpus counts."""

    words: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        if len(set(self.words)) != len(self.words):
            raise ValueError("words must be unique")
        object.__setattr__(self, "_stoi", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        head = ", ".join(self.words[:5])
        return f"Vocab({len(self)} words: {head}{', ...' if len(self) > 5 else ''})"

    def __contains__(self, word: object) -> bool:
        return word in self._stoi

    def id(self, word: str) -> int:
        """The id of one word; KeyError names a word that is not in the vocabulary."""
        try:
            return self._stoi[word]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary of {len(self)} words") from None

    def encode(self, words: Iterable[str]) -> torch.Tensor:
        """The ids of the words that are in the vocabulary (others are dropped): (n,) int64."""
        if isinstance(words, str):
            raise TypeError("words must be a sequence of words, not one string: split it first")
        return torch.tensor([self._stoi[w] for w in words if w in self._stoi], dtype=torch.long)

    def count_tensor(self) -> torch.Tensor:
        """The counts as a float tensor (V,), for the noise distribution and subsampling."""
        return torch.tensor(self.counts, dtype=torch.float64)


def build_vocab(words: Sequence[str], max_size: int, min_count: int = 1) -> Vocab:
    """The `max_size` most frequent words that occur at least `min_count` times.

    Ties in frequency are broken alphabetically, so the vocabulary does not depend on the order
    of the corpus. words: a sequence of strings (e.g. `tokenizers.split_words(text)`).
    """
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not one string: split it first")
    max_size = _positive_int("max_size", max_size)
    min_count = _positive_int("min_count", min_count)
    counts = Counter(words)
    if not counts:
        raise ValueError("words is empty: the corpus has no words to build a vocabulary from")
    ranked = sorted(
        ((w, c) for w, c in counts.items() if c >= min_count), key=lambda t: (-t[1], t[0])
    )
    ranked = ranked[:max_size]
    if not ranked:
        raise ValueError(f"no word occurs min_count={min_count} times")
    return Vocab(tuple(w for w, _ in ranked), tuple(c for _, c in ranked))


# --------------------------------------------------------------------------- word2vec


def keep_probabilities(counts: torch.Tensor, t: float = 1e-3) -> torch.Tensor:
    """word2vec's subsampling of frequent words: the probability of keeping each word, (V,).

    With f the word's share of the corpus, keep = min(1, sqrt(t / f) + t / f), the formula of
    the released word2vec code (the paper, Mikolov et al. 2013, gives the simpler discard
    probability 1 - sqrt(t / f)). Words with f below about 2.6 t are always kept; the most
    frequent ones ("the", "and") are mostly dropped.
    """
    counts = _tensor("counts", counts)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D tensor, got shape {tuple(counts.shape)}")
    if (counts <= 0).any():
        raise ValueError("counts must all be > 0")
    if not (isinstance(t, int | float) and t > 0):
        raise ValueError(f"t must be a positive number, got {t!r}")
    f = counts.double() / counts.double().sum()
    return torch.clamp(torch.sqrt(t / f) + t / f, max=1.0)


def subsample(
    ids: torch.Tensor, keep: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop each token with probability 1 - keep[id]: ids (n,) -> (m,) with m <= n, order kept."""
    keep = _tensor("keep", keep)
    ids = _ids("ids", ids, keep.numel())
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (a token stream), got shape {tuple(ids.shape)}")
    draws = torch.rand(ids.shape, generator=generator, dtype=torch.float64)
    return ids[draws < keep.double()[ids.long()]]


def skipgram_pairs(ids: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (center, context) pair at distance 1..window in a token stream.

    ids: (n,) -> centers (N,), contexts (N,) with N = 2 * sum_{o=1..window} max(n - o, 0),
    ordered by offset: first all pairs at distance +1, then -1, then +2, -2, ...
    """
    window = _positive_int("window", window)
    ids = _ids("ids", ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (a token stream), got shape {tuple(ids.shape)}")
    if ids.numel() < 2:
        raise ValueError(f"ids must hold at least 2 tokens to make a pair, got {ids.numel()}")
    centers, contexts = [], []
    for o in range(1, min(window, ids.numel() - 1) + 1):
        centers += [ids[:-o], ids[o:]]  # the word to the right, then the word to the left
        contexts += [ids[o:], ids[:-o]]
    return torch.cat(centers).long(), torch.cat(contexts).long()


def noise_distribution(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """The distribution negatives are drawn from: counts ** power, normalised. (V,) -> (V,).

    power=1 is the unigram distribution, 0 the uniform one; word2vec's 0.75 lifts rare words.
    """
    counts = _tensor("counts", counts)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D tensor, got shape {tuple(counts.shape)}")
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("counts must be >= 0 with a positive sum")
    if not isinstance(power, int | float) or isinstance(power, bool):
        raise TypeError(f"power must be a number, got {type(power).__name__}")
    p = counts.double() ** power * (counts > 0)
    return (p / p.sum()).float()


def sgns_loss(center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Skip-gram with negative sampling, averaged over a batch.

    center: (B, d) input vectors v_c; context: (B, d) output vectors u_o of the true contexts;
    negatives: (B, K, d) output vectors u_k of K sampled noise words. Returns a scalar,

        mean over the batch of  -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c),

    computed with `F.logsigmoid` (stable for large scores).
    """
    for name, x, dims in (
        ("center", center, 2),
        ("context", context, 2),
        ("negatives", negatives, 3),
    ):
        _tensor(name, x)
        if x.dim() != dims:
            raise ValueError(f"{name} must be {dims}-D, got shape {tuple(x.shape)}")
    if context.shape != center.shape:
        raise ValueError(
            f"context shape {tuple(context.shape)} must equal center shape {tuple(center.shape)}"
        )
    if negatives.shape[0] != center.shape[0] or negatives.shape[2] != center.shape[1]:
        raise ValueError(
            f"negatives shape {tuple(negatives.shape)} must be (B, K, d) = "
            f"({center.shape[0]}, K, {center.shape[1]})"
        )
    if center.shape[0] == 0:
        raise ValueError("the batch is empty (B = 0)")
    positive = (center * context).sum(-1)  # (B,)  u_o . v_c
    negative = torch.einsum("bkd,bd->bk", negatives, center)  # (B, K)  u_k . v_c
    return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)).mean()


class SkipGram(nn.Module):
    """word2vec's two tables: input vectors (the embeddings we keep) and output vectors.

    Initialised like the original code: input vectors uniform in [-0.5/d, 0.5/d], output vectors
    zero. forward(centers (B,), contexts (B,), negatives (B, K)) -> the scalar `sgns_loss`.
    """

    def __init__(self, vocab_size: int, dim: int, sparse: bool = False):
        super().__init__()
        vocab_size = _positive_int("vocab_size", vocab_size)
        dim = _positive_int("dim", dim)
        self.in_embed = nn.Embedding(vocab_size, dim, sparse=sparse)
        self.out_embed = nn.Embedding(vocab_size, dim, sparse=sparse)
        with torch.no_grad():
            self.in_embed.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.out_embed.weight.zero_()

    def forward(
        self, centers: torch.Tensor, contexts: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        V = self.in_embed.num_embeddings
        for name, ids in (("centers", centers), ("contexts", contexts), ("negatives", negatives)):
            _ids(name, ids, V)
        return sgns_loss(
            self.in_embed(centers), self.out_embed(contexts), self.out_embed(negatives)
        )

    def vectors(self) -> torch.Tensor:
        """The word vectors: the input table, detached, (V, d)."""
        return self.in_embed.weight.detach()


# --------------------------------------------------------------------------- similarity


def cosine_similarity_matrix(
    a: torch.Tensor, b: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """Cosine similarity of every row of a with every row of b: (n, d), (m, d) -> (n, m).

    b=None compares a with itself. Norms below eps count as eps (as in F.cosine_similarity), so
    a zero vector has similarity 0 with everything.
    """
    a = _matrix("a", a)
    b = a if b is None else _matrix("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dim, got {a.shape[1]} and {b.shape[1]}")
    na = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    nb = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    return na @ nb.T


def nearest_neighbours(
    vectors: torch.Tensor, query: torch.Tensor, k: int = 5, exclude: Iterable[int] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k rows of vectors (V, d) most cosine-similar to query (d,): (indices (k,), sims (k,)).

    exclude: row ids never returned (the query word itself, an analogy's input words).
    """
    vectors = _matrix("vectors", vectors)
    query = _tensor("query", query)
    if query.shape != (vectors.shape[1],):
        raise ValueError(f"query must have shape ({vectors.shape[1]},), got {tuple(query.shape)}")
    exclude = list(exclude)
    k = _positive_int("k", k)
    if k > vectors.shape[0] - len(set(exclude)):
        raise ValueError(
            f"k={k} is more than the {vectors.shape[0] - len(set(exclude))} candidates"
        )
    sims = cosine_similarity_matrix(query.unsqueeze(0).to(vectors.dtype), vectors)[0]
    if exclude:
        sims = sims.clone()
        sims[_ids("exclude", torch.tensor(exclude), vectors.shape[0])] = -math.inf
    top = sims.topk(k)
    return top.indices, top.values


def analogy(
    vectors: torch.Tensor, a: int, b: int, c: int, k: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """a is to b as c is to ?: the k rows nearest to b - a + c (unit vectors), a, b, c excluded.

    This is "3CosAdd" (Mikolov et al. 2013): with unit vectors, the answer maximises
    cos(x, b) - cos(x, a) + cos(x, c). Returns (indices (k,), cosine with b - a + c (k,)).
    """
    vectors = _matrix("vectors", vectors)
    for name, i in (("a", a), ("b", b), ("c", c)):
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vectors.shape[0]:
            raise ValueError(f"{name} must be a row id in [0, {vectors.shape[0]}), got {i!r}")
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return nearest_neighbours(vectors, unit[b] - unit[a] + unit[c], k, exclude=(a, b, c))


@dataclass(frozen=True)
class GapTest:
    """The result of `similarity_gap_test`."""

    gap: float  # mean(related) - mean(unrelated)
    p_value: float  # one-sided: how often shuffled labels give a gap at least this large
    related_mean: float
    unrelated_mean: float
    n_permutations: int


def similarity_gap_test(
    related: torch.Tensor,
    unrelated: torch.Tensor,
    n_permutations: int = 10_000,
    generator: torch.Generator | None = None,
) -> GapTest:
    """Is the mean similarity of related pairs higher than that of unrelated ones?

    related: (n,) and unrelated: (m,) similarities. The statistic is the difference of the
    means; under the null hypothesis (the labels "related" and "unrelated" are arbitrary), every
    relabelling is as likely, so the p-value is the share of random relabellings whose gap is at
    least the observed one, counting the observed labelling itself: (1 + hits) / (1 + n_perm).
    """
    related, unrelated = _tensor("related", related), _tensor("unrelated", unrelated)
    for name, x in (("related", related), ("unrelated", unrelated)):
        if x.dim() != 1 or x.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(x.shape)}")
    n_permutations = _positive_int("n_permutations", n_permutations)
    pooled = torch.cat([related.flatten(), unrelated.flatten()]).double().cpu()
    n = related.numel()
    gap = related.double().mean() - unrelated.double().mean()
    hits = 0
    for start in range(0, n_permutations, 1000):  # in blocks, to bound memory
        rows = min(1000, n_permutations - start)
        order = torch.rand(rows, pooled.numel(), generator=generator).argsort(dim=1)
        shuffled = pooled[order]
        gaps = shuffled[:, :n].mean(1) - shuffled[:, n:].mean(1)
        hits += int((gaps >= gap - 1e-12).sum())
    return GapTest(
        gap=float(gap),
        p_value=(1 + hits) / (1 + n_permutations),
        related_mean=float(related.double().mean()),
        unrelated_mean=float(unrelated.double().mean()),
        n_permutations=n_permutations,
    )


# --------------------------------------------------------------------------- PCA


def pca(x: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal component analysis by the SVD: x (n, d) -> (coords (n, k), explained (k,)).

    Centres the rows, takes the SVD X = U S V^T and projects onto the first k right singular
    vectors: coords = X V[:, :k] = U[:, :k] S[:k]. explained: the share of the total variance
    along each component. Each component's sign is fixed so that its largest-magnitude loading
    is positive (the SVD's signs are arbitrary).
    """
    x = _matrix("x", x)
    k = _positive_int("k", k)
    if x.shape[0] < 2:
        raise ValueError(f"x must have at least 2 rows, got {x.shape[0]}")
    if k > min(x.shape):
        raise ValueError(f"k={k} exceeds min(rows, dim) = {min(x.shape)}")
    centred = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:k]  # (k, d)
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * signs
    total = (s**2).sum()
    explained = (s[:k] ** 2 / total) if total > 0 else torch.zeros(k, dtype=x.dtype)
    return centred @ components.T, explained


# --------------------------------------------------------------------------- GloVe


def cooccurrence_matrix(
    ids: torch.Tensor, vocab_size: int, window: int, distance_weighting: bool = True
) -> torch.Tensor:
    """GloVe's co-occurrence counts: X[i, j] sums, over every time word j appears within
    `window` tokens of word i, 1/distance (distance_weighting=True, as in GloVe) or 1.

    ids: (n,) in [0, vocab_size) -> (vocab_size, vocab_size) float64, symmetric.
    """
    vocab_size = _positive_int("vocab_size", vocab_size)
    window = _positive_int("window", window)
    ids = _ids("ids", ids, vocab_size)
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(f"ids must be a non-empty 1-D token stream, got shape {tuple(ids.shape)}")
    X = torch.zeros(vocab_size * vocab_size, dtype=torch.float64, device=ids.device)
    ids = ids.long()
    for o in range(1, min(window, ids.numel() - 1) + 1):
        w = 1.0 / o if distance_weighting else 1.0
        left, right = ids[:-o], ids[o:]
        X.index_add_(0, left * vocab_size + right, torch.full((left.numel(),), w, dtype=X.dtype))
        X.index_add_(0, right * vocab_size + left, torch.full((left.numel(),), w, dtype=X.dtype))
    return X.view(vocab_size, vocab_size)


def glove_weights(x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    """GloVe's weighting f(x) = min(1, (x / x_max) ** alpha): same shape as x; f(0) = 0."""
    x = _tensor("x", x)
    if (x < 0).any():
        raise ValueError("x must be co-occurrence counts >= 0")
    if not x_max > 0:
        raise ValueError(f"x_max must be > 0, got {x_max!r}")
    return torch.clamp((x / x_max) ** alpha, max=1.0)


def glove_loss(
    w: torch.Tensor,
    w_context: torch.Tensor,
    b: torch.Tensor,
    b_context: torch.Tensor,
    cooc: torch.Tensor,
    x_max: float = 100.0,
    alpha: float = 0.75,
) -> torch.Tensor:
    """GloVe's weighted least squares (Pennington et al. 2014), a scalar:

        J = sum over i, j with X_ij > 0 of f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij) ** 2

    w, w_context: (V, d); b, b_context: (V,); cooc: (V, V) counts X (float).
    """
    w, w_context = _matrix("w", w), _matrix("w_context", w_context)
    cooc = _tensor("cooc", cooc)
    V = w.shape[0]
    if w_context.shape != w.shape:
        raise ValueError(f"w_context shape {tuple(w_context.shape)} must equal {tuple(w.shape)}")
    for name, bias in (("b", b), ("b_context", b_context)):
        if _tensor(name, bias).shape != (V,):
            raise ValueError(f"{name} must have shape ({V},), got {tuple(bias.shape)}")
    if cooc.shape != (V, V):
        raise ValueError(f"cooc must have shape ({V}, {V}), got {tuple(cooc.shape)}")
    # Dense form: f(0) = 0, so the pairs that never co-occur add nothing (their log X_ij,
    # which would be -inf, is replaced by 0 before it is multiplied by that zero weight).
    log_x = torch.where(cooc > 0, cooc, torch.ones_like(cooc)).log()  # log 1 = 0 where X = 0
    pred = w @ w_context.T + b[:, None] + b_context[None, :]  # (V, V)
    err = pred - log_x.to(pred.dtype)
    return (glove_weights(cooc, x_max, alpha).to(pred.dtype) * err**2).sum()
