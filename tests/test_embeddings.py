"""course_lib.embeddings against references (torch, closed forms, brute force) on awkward
inputs, its errors for bad input, and notebook 02's exercises with plausible wrong answers."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from exercise_helpers import learner
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from course_lib import embeddings as E
from course_lib import positions
from course_lib.exercises import nb02

F32 = dict(rtol=1e-5, atol=1e-6)
F64 = dict(rtol=1e-7, atol=1e-12)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- the embedding table


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (2, 1, 4)])
def test_one_hot_equals_torch(shape):
    ids = torch.randint(0, 11, shape, generator=gen(0))
    got = E.one_hot(ids, 11)
    assert got.shape == (*shape, 11) and got.dtype == torch.float32
    assert torch.equal(got, F.one_hot(ids, 11).float())
    assert torch.equal(E.one_hot(ids.int(), 11, dtype=torch.int64), F.one_hot(ids, 11))


@pytest.mark.parametrize("T, V, d", [(1, 1, 1), (9, 13, 5), (30, 7, 3)])
def test_one_hot_product_is_the_lookup(T, V, d):
    g = gen(T)
    W = torch.randn(V, d, generator=g)
    ids = torch.randint(0, V, (T,), generator=g)
    table = nn.Embedding.from_pretrained(W)
    assert torch.equal(E.one_hot(ids, V) @ W, W[ids])
    assert torch.equal(E.lookup(W, ids), table(ids))
    assert torch.equal(E.lookup(W, ids.view(1, T)), F.embedding(ids.view(1, T), W))


def test_lookup_works_on_a_non_contiguous_table():
    W = torch.randn(6, 10, generator=gen(1))[:, ::2]  # (6, 5), strided
    ids = torch.tensor([5, 0, 5])
    assert not W.is_contiguous()
    assert torch.equal(E.lookup(W, ids), F.embedding(ids, W))


def test_embedding_gradient_is_one_hot_transpose_times_upstream():
    g = gen(2)
    V, d, ids = 9, 4, torch.tensor([[1, 4, 4], [0, 1, 8]])  # (B, T) with repeats
    upstream = torch.randn(2, 3, d, generator=g)
    W = torch.randn(V, d, generator=g, requires_grad=True)
    (E.lookup(W, ids) * upstream).sum().backward()
    expected = E.one_hot(ids, V).reshape(-1, V).T @ upstream.reshape(-1, d)
    torch.testing.assert_close(W.grad, expected, **F32)
    dense, sparse = nn.Embedding(V, d), nn.Embedding(V, d, sparse=True)
    for m in (dense, sparse):
        (m(ids) * upstream).sum().backward()
    assert sparse.weight.grad.is_sparse and not dense.weight.grad.is_sparse
    torch.testing.assert_close(dense.weight.grad, expected, **F32)
    torch.testing.assert_close(sparse.weight.grad.to_dense(), expected, **F32)
    untouched = sorted(set(range(V)) - set(ids.flatten().tolist()))
    assert (dense.weight.grad[untouched] == 0).all()


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: E.one_hot(torch.tensor([0, 5]), 5),
            ValueError,
            r"ids must be in \[0, 5\), got id 5",
        ),
        (lambda: E.one_hot(torch.tensor([-1]), 5), ValueError, "got id -1"),
        (lambda: E.one_hot(torch.tensor([0.0]), 5), TypeError, "integer token ids"),
        (lambda: E.one_hot([0, 1], 5), TypeError, "ids must be a torch.Tensor, got list"),
        (lambda: E.one_hot(torch.tensor([0]), 0), ValueError, "num_classes must be >= 1"),
        (lambda: E.one_hot(torch.tensor([0]), 2.0), TypeError, "num_classes must be an integer"),
        (lambda: E.lookup(torch.zeros(3, 2), torch.tensor([3])), ValueError, r"\[0, 3\), got id 3"),
        (lambda: E.lookup(torch.zeros(3), torch.tensor([0])), ValueError, "weight must be 2-D"),
        (
            lambda: E.lookup(torch.zeros(3, 2, dtype=torch.long), torch.tensor([0])),
            TypeError,
            "floating-point",
        ),
    ],
)
def test_bad_input_to_the_table(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# --------------------------------------------------------------------------- the vocabulary


def test_build_vocab_orders_by_count_then_alphabet():
    words = "b a c a b d a é é é é".split()
    v = E.build_vocab(words, max_size=10)
    assert v.words == ("é", "a", "b", "c", "d") and v.counts == (4, 3, 2, 1, 1)
    assert E.build_vocab(list(reversed(words)), max_size=10) == v  # order of the corpus ignored
    assert E.build_vocab(words, max_size=2).words == ("é", "a")
    assert E.build_vocab(words, max_size=10, min_count=2).words == ("é", "a", "b")
    assert len(v) == 5 and "é" in v and "z" not in v and v.id("c") == 3
    assert v.encode(["a", "zzz", "é", "d"]).tolist() == [1, 0, 4]
    assert v.encode([]).shape == (0,) and v.encode([]).dtype == torch.long
    assert v.count_tensor().tolist() == [4.0, 3.0, 2.0, 1.0, 1.0]
    assert repr(v) == "Vocab(5 words: é, a, b, c, d)"


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: E.build_vocab([], 10), ValueError, "words is empty"),
        (lambda: E.build_vocab("to be", 10), TypeError, "not one string"),
        (lambda: E.build_vocab(["a"], 0), ValueError, "max_size must be >= 1, got 0"),
        (lambda: E.build_vocab(["a"], 5, min_count=2), ValueError, "no word occurs min_count=2"),
        (lambda: E.build_vocab(["a"], 5).id("b"), KeyError, "'b' is not in the vocabulary"),
        (lambda: E.build_vocab(["a"], 5).encode("a b"), TypeError, "not one string"),
        (lambda: E.Vocab(("a", "a"), (1, 1)), ValueError, "unique"),
        (lambda: E.Vocab(("a",), (1, 2)), ValueError, "1 words but 2 counts"),
    ],
)
def test_bad_input_to_the_vocabulary(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# --------------------------------------------------------------------------- word2vec data


def brute_force_pairs(ids: list[int], window: int) -> list[tuple[int, int]]:
    return [
        (ids[i], ids[j])
        for i in range(len(ids))
        for j in range(len(ids))
        if i != j and abs(i - j) <= window
    ]


@given(st.lists(st.integers(0, 9), min_size=2, max_size=30), st.integers(1, 6))
def test_skipgram_pairs_are_every_pair_within_the_window(ids, window):
    c, o = E.skipgram_pairs(torch.tensor(ids), window)
    assert c.dtype == o.dtype == torch.long and c.shape == o.shape
    got = sorted(zip(c.tolist(), o.tolist(), strict=True))
    assert got == sorted(brute_force_pairs(ids, window))
    n = len(ids)
    assert c.numel() == 2 * sum(max(n - k, 0) for k in range(1, window + 1))


def test_skipgram_pairs_order_and_errors():
    c, o = E.skipgram_pairs(torch.tensor([0, 1, 2]), 1)
    assert list(zip(c.tolist(), o.tolist(), strict=True)) == [(0, 1), (1, 2), (1, 0), (2, 1)]
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        E.skipgram_pairs(torch.tensor([0, 1]), 0)
    with pytest.raises(TypeError, match="window must be an int"):
        E.skipgram_pairs(torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        E.skipgram_pairs(torch.tensor([], dtype=torch.long), 2)
    with pytest.raises(ValueError, match="1-D"):
        E.skipgram_pairs(torch.zeros(2, 3, dtype=torch.long), 2)


def test_keep_probabilities_and_subsample():
    counts = torch.tensor([900.0, 90.0, 9.0, 1.0])
    keep = E.keep_probabilities(counts, t=1e-2)
    f = counts.double() / counts.double().sum()
    torch.testing.assert_close(keep, torch.clamp((1e-2 / f).sqrt() + 1e-2 / f, max=1), **F64)
    assert keep[0] < keep[1] and keep[2] == keep[3] == 1.0
    ids = torch.randint(0, 4, (20_000,), generator=gen(3))
    kept = E.subsample(ids, keep, generator=gen(4))
    assert torch.equal(kept, E.subsample(ids, keep, generator=gen(4)))  # seeded
    for w in range(4):  # about the right share of each word survives (binomial, 5 sigma)
        n, p = int((ids == w).sum()), keep[w].item()
        assert abs(int((kept == w).sum()) - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1e-9
    assert torch.equal(E.subsample(ids, torch.ones(4)), ids)
    assert E.subsample(ids, torch.zeros(4)).numel() == 0
    with pytest.raises(ValueError, match="counts must all be > 0"):
        E.keep_probabilities(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="t must be a positive number"):
        E.keep_probabilities(counts, t=0)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 4\), got id 4"):
        E.subsample(torch.tensor([4]), keep)


def test_noise_distribution():
    counts = torch.tensor([16.0, 1.0, 0.0, 81.0])
    p = E.noise_distribution(counts)
    expected = counts**0.75 / (counts**0.75).sum()
    torch.testing.assert_close(p, expected, **F32)
    assert p[2] == 0 and math.isclose(p.sum().item(), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(E.noise_distribution(counts, 1.0), counts / counts.sum(), **F32)
    torch.testing.assert_close(
        E.noise_distribution(torch.tensor([3.0, 5.0]), 0.0), torch.tensor([0.5, 0.5])
    )
    with pytest.raises(ValueError, match="positive sum"):
        E.noise_distribution(torch.zeros(3))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        E.noise_distribution(torch.ones(2, 2))


# --------------------------------------------------------------------------- the loss


def sgns_direct(center, context, negatives) -> float:
    """The formula, term by term, in Python floats (float64)."""

    def log_sigmoid(s: float) -> float:
        return -math.log1p(math.exp(-s)) if s >= 0 else s - math.log1p(math.exp(s))

    total = 0.0
    for b in range(center.shape[0]):
        v = center[b].tolist()
        u = context[b].tolist()
        loss = -log_sigmoid(sum(x * y for x, y in zip(u, v, strict=True)))
        for k in range(negatives.shape[1]):
            un = negatives[b, k].tolist()
            loss -= log_sigmoid(-sum(x * y for x, y in zip(un, v, strict=True)))
        total += loss
    return total / center.shape[0]


@pytest.mark.parametrize("B, K, d, scale", [(1, 1, 1, 1.0), (4, 3, 7, 1.0), (5, 2, 3, 30.0)])
def test_sgns_loss_equals_the_formula(B, K, d, scale):
    g = gen(B * 100 + K)
    args = [scale * torch.randn(*s, generator=g) for s in ((B, d), (B, d), (B, K, d))]
    got = E.sgns_loss(*args)
    assert got.shape == () and torch.isfinite(got)
    assert math.isclose(got.item(), sgns_direct(*args), rel_tol=1e-5, abs_tol=1e-6)
    args64 = [a.double() for a in args]
    assert math.isclose(E.sgns_loss(*args64).item(), sgns_direct(*args64), rel_tol=1e-12)


def test_sgns_loss_is_stable_for_huge_scores():
    v = torch.full((1, 4), 100.0)
    u = torch.full((1, 4), -100.0)  # the true context scores -40000
    got = E.sgns_loss(v, u, -u.unsqueeze(1))  # the negative scores +40000
    assert math.isclose(got.item(), 80_000.0, rel_tol=1e-6)


def test_sgns_gradient_matches_the_closed_form_and_gradcheck():
    g = gen(5)
    B, K, d = 3, 4, 5
    v, u, un = (
        torch.randn(*s, generator=g, dtype=torch.float64) for s in ((B, d), (B, d), (B, K, d))
    )
    v.requires_grad_()
    E.sgns_loss(v, u, un).backward()
    # dL/dv_b = (-(1 - sigma(u.v)) u + sum_k sigma(u_k.v) u_k) / B
    pos = torch.sigmoid((u * v.detach()).sum(-1, keepdim=True))
    neg = torch.sigmoid(torch.einsum("bkd,bd->bk", un, v.detach())).unsqueeze(-1)
    expected = (-(1 - pos) * u + (neg * un).sum(1)) / B
    torch.testing.assert_close(v.grad, expected, **F64)
    inputs = tuple(x.detach().requires_grad_() for x in (v, u, un))
    assert torch.autograd.gradcheck(E.sgns_loss, inputs)


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((2, 3), (2, 4), (2, 1, 3)), r"context shape \(2, 4\) must equal center shape \(2, 3\)"),
        (((2, 3), (2, 3), (2, 1, 4)), r"must be \(B, K, d\) = \(2, K, 3\)"),
        (((2, 3), (2, 3), (3, 1, 3)), r"must be \(B, K, d\)"),
        (((2, 3), (2, 3), (2, 3)), "negatives must be 3-D"),
        (((3,), (3,), (1, 1, 3)), "center must be 2-D"),
        (((0, 3), (0, 3), (0, 2, 3)), "the batch is empty"),
    ],
)
def test_bad_input_to_the_loss(shapes, message):
    with pytest.raises(ValueError, match=message):
        E.sgns_loss(*(torch.zeros(s) for s in shapes))


def test_skipgram_module():
    torch.manual_seed(6)
    m = E.SkipGram(20, 8)
    w_in = m.in_embed.weight
    assert w_in.abs().max() <= 0.5 / 8 and (m.out_embed.weight == 0).all()
    c, o = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    n = torch.tensor([[7, 8], [9, 10], [11, 19]])
    # zero output vectors: every score is 0, so the loss is (1 + K) log 2
    assert math.isclose(m(c, o, n).item(), 3 * math.log(2), rel_tol=1e-6)
    with torch.no_grad():
        m.out_embed.weight.normal_()
    w_out = m.out_embed.weight
    assert torch.equal(m(c, o, n), E.sgns_loss(w_in[c], w_out[o], w_out[n]))
    assert torch.equal(m.vectors(), w_in.detach()) and not m.vectors().requires_grad
    with pytest.raises(ValueError, match=r"negatives must be in \[0, 20\), got id 20"):
        m(c, o, torch.tensor([[20, 0]] * 3))
    with pytest.raises(ValueError, match="dim must be >= 1"):
        E.SkipGram(5, 0)
    sparse = E.SkipGram(20, 8, sparse=True)
    sparse(c, o, n).backward()
    assert sparse.in_embed.weight.grad.is_sparse


def test_word2vec_pieces_learn_a_planted_structure():
    """Two 'topics' of 5 words each: words only ever appear next to words of their own topic.
    A short training run with the module's pieces must put same-topic words closer."""
    g = gen(7)
    topic_of = torch.arange(10) // 5
    stream = torch.cat(
        [torch.randint(0, 5, (40,), generator=g) + 5 * (i % 2) for i in range(100)]
    )  # 100 runs of 40 tokens, alternating topics
    counts = torch.bincount(stream, minlength=10).double()
    centers, contexts = E.skipgram_pairs(stream, window=2)
    noise = E.noise_distribution(counts)
    torch.manual_seed(8)
    model = E.SkipGram(10, 8)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        pick = torch.randint(centers.numel(), (64,), generator=g)
        negs = torch.multinomial(noise, 64 * 3, replacement=True, generator=g).view(64, 3)
        loss = model(centers[pick], contexts[pick], negs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sims = E.cosine_similarity_matrix(model.vectors())
    same = topic_of[:, None] == topic_of[None, :]
    off = ~torch.eye(10, dtype=torch.bool)
    assert sims[same & off].mean() > sims[~same].mean() + 0.5


# --------------------------------------------------------------------------- similarity


@pytest.mark.parametrize("n, m, d", [(1, 1, 1), (3, 5, 4), (7, 2, 33)])
def test_cosine_similarity_matrix_equals_torch(n, m, d):
    g = gen(n + m + d)
    a, b = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    expected = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    torch.testing.assert_close(E.cosine_similarity_matrix(a, b), expected, **F32)
    torch.testing.assert_close(E.cosine_similarity_matrix(a.T.contiguous().T, b), expected, **F32)
    self_sim = E.cosine_similarity_matrix(a)
    torch.testing.assert_close(torch.diagonal(self_sim), torch.ones(n), **F32)


def test_cosine_of_a_zero_vector_is_zero():
    a, b = torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    got = E.cosine_similarity_matrix(a, b)
    assert torch.equal(got, torch.zeros(1, 2))
    torch.testing.assert_close(got, F.cosine_similarity(a[:, None], b[None], dim=-1))
    with pytest.raises(ValueError, match="same dim, got 3 and 2"):
        E.cosine_similarity_matrix(a, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="a must be 2-D"):
        E.cosine_similarity_matrix(torch.zeros(3), b)


def test_nearest_neighbours_and_analogy():
    g = gen(9)
    X = torch.randn(50, 6, generator=g)
    q = torch.randn(6, generator=g)
    idx, sims = E.nearest_neighbours(X, q, k=4, exclude=[3])
    brute = sorted(
        ((F.cosine_similarity(q, X[i], dim=0).item(), i) for i in range(50) if i != 3),
        reverse=True,
    )[:4]
    assert idx.tolist() == [i for _, i in brute]
    torch.testing.assert_close(sims, torch.tensor([s for s, _ in brute]), **F32)
    # a planted analogy: d = b - a + c exactly, with unit vectors
    U = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    U[7] = U[1] - U[0] + U[2]
    idx, sims = E.analogy(U, 0, 1, 2, k=2)
    assert idx[0].item() == 7 and math.isclose(sims[0].item(), 1.0, rel_tol=1e-6)
    assert not {0, 1, 2} & set(idx.tolist())
    with pytest.raises(ValueError, match="k=50 is more than the 49 candidates"):
        E.nearest_neighbours(X, q, k=50, exclude=[0])
    with pytest.raises(ValueError, match=r"query must have shape \(6,\)"):
        E.nearest_neighbours(X, torch.zeros(5))
    with pytest.raises(ValueError, match=r"b must be a row id in \[0, 8\), got 8"):
        E.analogy(U, 0, 8, 2)


def test_similarity_gap_test():
    g = gen(10)
    related = 0.5 + 0.1 * torch.randn(30, generator=g)
    random = 0.1 * torch.randn(1000, generator=g)
    t = E.similarity_gap_test(related, random, n_permutations=2000, generator=gen(11))
    assert math.isclose(t.gap, related.double().mean().item() - random.double().mean().item())
    assert t.p_value == 1 / 2001 and t.n_permutations == 2000
    same = E.similarity_gap_test(random[:30], random[30:], 2000, generator=gen(12))
    assert same.p_value > 0.05 and abs(same.gap) < 0.05
    again = E.similarity_gap_test(random[:30], random[30:], 2000, generator=gen(12))
    assert again == same  # seeded
    reverse = E.similarity_gap_test(random[30:], related, 500, generator=gen(13))
    assert reverse.p_value > 0.99  # one-sided: a negative gap is no evidence


def test_similarity_gap_test_agrees_with_scipy():
    from scipy import stats  # pinned in constraints.txt (a dependency of sentence-transformers)

    g = gen(14)
    x, y = 0.3 * torch.randn(12, generator=g) + 0.2, 0.3 * torch.randn(40, generator=g)
    ours = E.similarity_gap_test(x, y, n_permutations=20_000, generator=gen(15))
    ref = stats.permutation_test(
        (x.double().numpy(), y.double().numpy()),
        lambda a, b: a.mean() - b.mean(),
        permutation_type="independent",
        alternative="greater",
        n_resamples=20_000,
        rng=0,
    )
    assert math.isclose(ours.gap, ref.statistic, rel_tol=1e-12)
    se = math.sqrt(ref.pvalue * (1 - ref.pvalue) / 20_000)  # Monte-Carlo error of each
    assert abs(ours.p_value - ref.pvalue) < 6 * se + 1e-4


def test_bad_input_to_the_gap_test():
    with pytest.raises(ValueError, match="related must be a non-empty 1-D"):
        E.similarity_gap_test(torch.zeros(0), torch.zeros(3))
    with pytest.raises(ValueError, match="n_permutations must be >= 1"):
        E.similarity_gap_test(torch.zeros(2), torch.zeros(3), n_permutations=0)


# --------------------------------------------------------------------------- PCA


@pytest.mark.parametrize("n, d, k", [(2, 3, 1), (10, 4, 2), (30, 64, 3), (5, 5, 5)])
def test_pca_equals_the_covariance_eigenvectors(n, d, k):
    X = torch.randn(n, d, generator=gen(n * d), dtype=torch.float64) * torch.linspace(3, 0.5, d)
    coords, explained = E.pca(X, k)
    assert coords.shape == (n, k) and explained.shape == (k,)
    evals, evecs = torch.linalg.eigh(torch.cov(X.T))  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    torch.testing.assert_close(explained, (evals / evals.sum())[:k], **F64)
    reference = (X - X.mean(0)) @ evecs[:, :k]
    signs = torch.sign((coords * reference).sum(0))
    torch.testing.assert_close(coords, reference * signs, rtol=1e-7, atol=1e-9)
    variances = coords.var(dim=0)
    assert (variances[:-1] >= variances[1:] - 1e-9).all()  # largest variance first


def test_pca_keeps_every_distance_with_all_components_and_fixes_signs():
    X = torch.randn(6, 3, generator=gen(16), dtype=torch.float64)
    coords, explained = E.pca(X, 3)
    torch.testing.assert_close(torch.cdist(coords, coords), torch.cdist(X, X), **F64)
    assert math.isclose(explained.sum().item(), 1.0)
    again, _ = E.pca(-X, 3)  # reflected data: same coordinates up to each axis's sign rule
    assert torch.allclose(again.abs(), coords.abs())
    with pytest.raises(ValueError, match="at least 2 rows"):
        E.pca(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"k=4 exceeds min\(rows, dim\) = 3"):
        E.pca(X, 4)


# --------------------------------------------------------------------------- GloVe


@given(st.lists(st.integers(0, 5), min_size=1, max_size=25), st.integers(1, 4), st.booleans())
def test_cooccurrence_matrix_against_loops(ids, window, weighted):
    X = E.cooccurrence_matrix(torch.tensor(ids), 6, window, distance_weighting=weighted)
    expected = torch.zeros(6, 6, dtype=torch.float64)
    for i, j in itertools.product(range(len(ids)), repeat=2):
        if i != j and abs(i - j) <= window:
            expected[ids[i], ids[j]] += 1 / abs(i - j) if weighted else 1
    torch.testing.assert_close(X, expected, **F64)
    assert torch.equal(X, X.T)


def test_glove_weights():
    x = torch.tensor([0.0, 1.0, 50.0, 100.0, 1e4])
    torch.testing.assert_close(
        E.glove_weights(x), torch.tensor([0.0, 100**-0.75, 0.5**0.75, 1.0, 1.0]), **F32
    )
    with pytest.raises(ValueError, match="counts >= 0"):
        E.glove_weights(torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="x_max must be > 0"):
        E.glove_weights(x, x_max=0)


def glove_direct(w, wc, b, bc, X, x_max=100.0, alpha=0.75):
    total = 0.0
    for i, j in itertools.product(range(X.shape[0]), repeat=2):
        x = X[i, j].item()
        if x > 0:
            f = min(1.0, (x / x_max) ** alpha)
            total += f * ((w[i] @ wc[j]).item() + b[i].item() + bc[j].item() - math.log(x)) ** 2
    return total


def test_glove_loss_equals_the_sum_and_has_the_right_gradient():
    g = gen(17)
    V, d = 5, 3
    X = torch.tensor(
        [
            [0, 2, 0.5, 0, 150],
            [2, 0, 1, 0, 0],
            [0.5, 1, 0, 3, 0],
            [0, 0, 3, 0, 0],
            [150, 0, 0, 0, 0],
        ],
        dtype=torch.float64,
    )
    params = [
        torch.randn(*s, generator=g, dtype=torch.float64) for s in ((V, d), (V, d), (V,), (V,))
    ]
    got = E.glove_loss(*params, X)
    assert math.isclose(got.item(), glove_direct(*params, X), rel_tol=1e-12)
    inputs = tuple(p.requires_grad_() for p in params)
    assert torch.autograd.gradcheck(lambda *p: E.glove_loss(*p, X), inputs)
    # float32 parameters with float64 counts: the loss comes out in float32
    p32 = [p.detach().float() for p in params]
    assert E.glove_loss(*p32, X).dtype == torch.float32
    assert math.isclose(E.glove_loss(*p32, X).item(), glove_direct(*params, X), rel_tol=1e-5)


def test_bad_input_to_glove():
    w = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"cooc must have shape \(3, 3\)"):
        E.glove_loss(w, w, torch.zeros(3), torch.zeros(3), torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        E.glove_loss(w, w, torch.zeros(2), torch.zeros(3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="w_context shape"):
        E.glove_loss(w, torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="window must be >= 1"):
        E.cooccurrence_matrix(torch.tensor([0, 1]), 2, 0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        E.cooccurrence_matrix(torch.tensor([], dtype=torch.long), 2, 1)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 2\), got id 2"):
        E.cooccurrence_matrix(torch.tensor([0, 2]), 2, 1)


# --------------------------------------------------------------------------- positions


@pytest.mark.parametrize("T, d, base", [(1, 2, 10_000.0), (17, 6, 10_000.0), (64, 32, 500.0)])
def test_sinusoidal_encoding_closed_form(T, d, base):
    pe = E.sinusoidal_encoding(T, d, base=base)
    assert pe.shape == (T, d) and pe.dtype == torch.float32
    expected = torch.tensor(
        [
            [
                math.sin(p / base ** (2 * (j // 2) / d))
                if j % 2 == 0
                else math.cos(p / base ** (2 * (j // 2) / d))
                for j in range(d)
            ]
            for p in range(T)
        ]
    )
    torch.testing.assert_close(pe, expected, **F32)
    pe64 = E.sinusoidal_encoding(T, d, base=base, dtype=torch.float64)
    dots = pe64 @ pe64.T  # depends only on the distance: constant along diagonals
    torch.testing.assert_close(dots[1:, 1:], dots[:-1, :-1], **F64)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: E.sinusoidal_encoding(4, 7), "dim must be even"),
        (lambda: E.sinusoidal_encoding(0, 8), "num_positions must be >= 1"),
        (lambda: E.sinusoidal_encoding(4, 8, base=1.0), "base must be > 1"),
        (lambda: E.rope_frequencies(5), "dim must be even"),
        (lambda: E.apply_rope(torch.zeros(2, 3, 5)), "dim must be even"),
        (lambda: E.apply_rope(torch.zeros(4)), r"x must be \(..., seq, dim\)"),
        (
            lambda: E.apply_rope(torch.zeros(3, 4), torch.arange(4)),
            r"positions must have shape \(3,\)",
        ),
    ],
)
def test_bad_input_to_positions(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_rope_needs_floating_point_input():
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        E.apply_rope(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="positions must be a torch.Tensor"):
        E.apply_rope(torch.zeros(3, 4), positions=[0, 1, 2])


def rope_complex(x, positions, base=10_000.0):
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2).contiguous())
    angles = positions.double()[:, None] * E.rope_frequencies(x.shape[-1], base)
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


@pytest.mark.parametrize("shape", [(1, 2), (5, 8), (2, 3, 7, 16), (1, 1, 1, 64)])
def test_rope_equals_complex_multiplication(shape):
    x = torch.randn(*shape, generator=gen(shape[-1]))
    positions = torch.arange(shape[-2]) * 3 + 1
    got = E.apply_rope(x, positions, base=1000.0)
    torch.testing.assert_close(got, rope_complex(x, positions, 1000.0).float(), **F32)
    torch.testing.assert_close(got.norm(dim=-1), x.norm(dim=-1), **F32)
    torch.testing.assert_close(
        E.apply_rope(x.double()), rope_complex(x, torch.arange(shape[-2])), **F64
    )
    assert torch.equal(E.apply_rope(x, torch.zeros(shape[-2], dtype=torch.long)), x)


def test_rope_non_contiguous_input():
    x = torch.randn(4, 8, 6, generator=gen(18)).transpose(0, 1)  # (8, 4, 6), strided
    assert not x.is_contiguous()
    torch.testing.assert_close(E.apply_rope(x), E.apply_rope(x.contiguous()), rtol=0, atol=0)


@given(st.integers(0, 200), st.integers(0, 200), st.integers(-100, 100))
def test_rope_scores_depend_only_on_the_offset(m, n, shift):
    g = gen(19)
    q, k = torch.randn(1, 32, generator=g), torch.randn(1, 32, generator=g)

    def score(a, b):
        qa = E.apply_rope(q, torch.tensor([a]))
        kb = E.apply_rope(k, torch.tensor([b]))
        return (qa @ kb.T).item()

    a, b = m + max(shift, -min(m, n)), n + max(shift, -min(m, n))  # both stay >= 0
    assert math.isclose(score(m, n), score(a, b), rel_tol=1e-5, abs_tol=1e-4)


def test_rope_interleaved_equals_the_rotate_half_layout():
    """GPT-NeoX / Llama pair dimension i with i + d/2; that is RoPE on a permuted vector."""
    d, T = 12, 9
    x = torch.randn(2, T, d, generator=gen(20), dtype=torch.float64)
    freq = E.rope_frequencies(d)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * freq  # (T, d/2)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)

    def rotate_half(t):
        return torch.cat([-t[..., d // 2 :], t[..., : d // 2]], dim=-1)

    half_layout = x * cos + rotate_half(x) * sin
    perm = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], -1).flatten()
    torch.testing.assert_close(E.apply_rope(x[..., perm]), half_layout[..., perm], **F64)
    torch.testing.assert_close(
        E.rope_frequencies(d),
        torch.tensor([10_000 ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64),
        **F64,
    )


# --------------------------------------------------------------------------- exercises
# The answer key (course_lib.exercises.nb02) that notebook 02's check cells call, tried with
# a right answer and each named mistake as a learner would write them.


def _verdicts(exercise, signature, bodies):
    return [exercise(learner(signature, body), quiet=True).message for body in bodies]


def test_exercise_sinusoidal_encoding_wrong_answers_are_named():
    right, per_column, swapped, halves = _verdicts(
        nb02.sinusoidal_encoding,
        "def sinusoidal_encoding(num_positions, dim):",
        [
            # the reference solution
            "p = torch.arange(num_positions, dtype=torch.float64)[:, None]\n"
            "w = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)\n"
            "pe = torch.zeros(num_positions, dim, dtype=torch.float64)\n"
            "pe[:, 0::2] = torch.sin(p * w)\n"
            "pe[:, 1::2] = torch.cos(p * w)\n"
            "return pe.float()",
            # a frequency for every column, in float32 as a learner would write it
            "j = torch.arange(dim)\n"
            "angles = torch.arange(num_positions)[:, None] / 10000 ** (2 * j / dim)\n"
            "return torch.where(j % 2 == 0, angles.sin(), angles.cos())",
            # cosines in the even columns
            "p = torch.arange(num_positions)[:, None]\n"
            "w = 10000 ** (-torch.arange(0, dim, 2) / dim)\n"
            "pe = torch.zeros(num_positions, dim)\n"
            "pe[:, 0::2] = torch.cos(p * w)\n"
            "pe[:, 1::2] = torch.sin(p * w)\n"
            "return pe",
            # sines then cosines
            "p = torch.arange(num_positions)[:, None]\n"
            "w = 10000 ** (-torch.arange(0, dim, 2) / dim)\n"
            "return torch.cat([torch.sin(p * w), torch.cos(p * w)], dim=1)",
        ],
    )
    assert right == "sinusoidal_encoding: all 4 cases pass. Well done!"
    assert "hint: this looks like a frequency per column instead of per pair" in per_column
    assert "hint: this looks like sine and cosine swapped" in swapped
    assert "hint: this looks like all sines first, then all cosines" in halves


def test_exercise_cosine_similarity_wrong_answers_are_named():
    right, raw, columns, only_a, no_clamp = _verdicts(
        nb02.cosine_similarity_matrix,
        "def cosine_similarity_matrix(a, b):",
        [
            "return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T",
            "return a @ b.T",
            "return (a / a.norm(dim=0)) @ (b / b.norm(dim=0)).T",
            "return (a / a.norm(dim=1, keepdim=True)) @ b.T",
            "return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T",
        ],
    )
    assert right == "cosine_similarity_matrix: all 5 cases pass. Well done!"
    assert "hint: this looks like dot products without dividing by the lengths" in raw
    assert "hint: this looks like normalising columns instead of rows" in columns
    assert "hint: this looks like normalising only a" in only_a
    assert "4 of 5 cases pass; case 'a zero vector' does not" in no_clamp
    assert "inf or nan" in no_clamp


def test_exercise_sgns_loss_wrong_answers_are_named():
    right, no_minus, summed, underflow = _verdicts(
        nb02.sgns_loss,
        "def sgns_loss(center, context, negatives):",
        [
            "pos = torch.einsum('bd,bd->b', center, context)\n"
            "neg = torch.einsum('bkd,bd->bk', negatives, center)\n"
            "return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()",
            "pos = (center * context).sum(-1)\n"
            "neg = (negatives * center[:, None, :]).sum(-1)\n"
            "return -(F.logsigmoid(pos) + F.logsigmoid(neg).sum(-1)).mean()",
            "pos = (center * context).sum(-1)\n"
            "neg = (negatives * center[:, None, :]).sum(-1)\n"
            "return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).sum()",
            "pos = (center * context).sum(-1)\n"
            "neg = (negatives * center[:, None, :]).sum(-1)\n"
            "return -(torch.sigmoid(pos).log() + torch.sigmoid(-neg).log().sum(-1)).mean()",
        ],
    )
    assert right == "sgns_loss: all 4 cases pass. Well done!"
    assert "hint: this looks like scoring the negatives without the minus sign" in no_minus
    assert "hint: this looks like summing over the batch instead of averaging" in summed
    assert "case 'large scores' does not" in underflow
    assert "hint: this looks like log(sigmoid(s)), which underflows" in underflow


def test_rope_rotate_is_apply_rope_with_cached_rotations():
    from course_lib.embeddings import apply_rope, rope_rotate

    for shape in [(1, 1, 5, 2), (3, 4, 17, 8), (7, 6)]:
        x = torch.randn(*shape, requires_grad=True)
        y = x.detach().clone().requires_grad_(True)
        a, b = rope_rotate(x), apply_rope(y)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        g = torch.randn(shape)
        a.backward(g)
        b.backward(g)
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-6)
    half = torch.randn(2, 9, 4, dtype=torch.bfloat16)
    assert rope_rotate(half).dtype is torch.bfloat16
    with pytest.raises(ValueError, match="dim"):
        rope_rotate(torch.randn(2, 3, 5))


def test_an_empty_list_of_ids_gives_empty_results():
    """torch.tensor([]) is float32; as ids it means "no tokens", not a dtype mistake."""
    w = torch.randn(4, 3)
    for ids in (torch.tensor([]), torch.tensor([], dtype=torch.long)):
        assert E.lookup(w, ids).shape == (0, 3)
        assert E.one_hot(ids, 4).shape == (0, 4)
    vocab = E.build_vocab(["a", "b", "a"], 5)
    assert vocab.encode([]).shape == (0,) and vocab.encode([]).dtype == torch.long
    with pytest.raises(TypeError, match="integer token ids"):
        E.lookup(w, torch.tensor([1.0]))  # a non-empty float tensor is still refused


def test_rope_rotations_first_made_under_inference_mode_still_train():
    # The rotations are cached: made first while sampling under inference_mode, they must not
    # be inference tensors, or the next training step cannot save them for backward.
    positions._rope_rotations.cache_clear()
    x = torch.randn(2, 7, 8)
    with torch.inference_mode():
        E.rope_rotate(x)
    w = torch.randn(2, 7, 8, requires_grad=True)
    E.rope_rotate(w).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()
