"""course_lib.losses against PyTorch (softmax, log-softmax, cross-entropy, gradients), the count
baselines against a direct count, and bad input."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import losses as L
from course_lib.exercises import nb05

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_softmax_and_cross_entropy.ipynb"
F32 = dict(rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- softmax


@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    scale=st.sampled_from([1.0, 30.0, 1e4]),
    seed=st.integers(0, 2**16),
)
def test_softmax_family_equals_torch(shape, scale, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    for dim in range(-len(shape), len(shape)):
        torch.testing.assert_close(L.softmax(x, dim), torch.softmax(x, dim), **F32)
        torch.testing.assert_close(L.log_softmax(x, dim), torch.log_softmax(x, dim), **F32)
        torch.testing.assert_close(L.logsumexp(x, dim), torch.logsumexp(x, dim), **F32)
        assert torch.isfinite(L.log_softmax(x, dim)).all()


def test_softmax_gradients_equal_torch_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 5, generator=g) * 4).double().requires_grad_()
    for ours, ref in ((L.softmax, torch.softmax), (L.log_softmax, torch.log_softmax)):
        w = torch.randn(3, 5, generator=g).double()
        (a,) = torch.autograd.grad((ours(x, 1) * w).sum(), x)
        (b,) = torch.autograd.grad((ref(x, 1) * w).sum(), x)
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)
        assert torch.autograd.gradcheck(lambda t, f=ours: f(t, 1), (x,))


def test_logsumexp_edge_values():
    x = torch.tensor([[-math.inf, -math.inf], [1e4, 1e4], [0.0, -math.inf]])
    torch.testing.assert_close(L.logsumexp(x, -1), torch.logsumexp(x, -1))
    assert L.logsumexp(x, -1, keepdim=True).shape == (3, 1)
    # a non-contiguous view
    y = torch.randn(4, 7).t()
    torch.testing.assert_close(L.log_softmax(y, 0), torch.log_softmax(y, 0), **F32)


def test_softmax_bad_input():
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        L.softmax(torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        L.logsumexp([1.0, 2.0])


# --------------------------------------------------------------------------- cross-entropy


def _case(logit_shape, seed, scale=3.0, ignore_frac=0.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(logit_shape, generator=g) * scale).to(dtype).requires_grad_()
    c = logit_shape[0] if len(logit_shape) == 1 else logit_shape[1]
    t_shape = () if len(logit_shape) == 1 else logit_shape[:1] + logit_shape[2:]
    t = torch.randint(0, c, t_shape, generator=g)
    if ignore_frac and t.dim():
        t[torch.rand(t_shape, generator=g) < ignore_frac] = -100
        t.view(-1)[0] = -100  # at least one padded position
        t.view(-1)[-1] = 0 if t.numel() > 1 else t.view(-1)[-1]  # at least one real one
    return x, t


def _same(x, t, **kw):
    ours, ref = L.cross_entropy(x, t, **kw), F.cross_entropy(x, t, **kw)
    torch.testing.assert_close(ours, ref, **F32, equal_nan=True)
    w = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9))
    (a,) = torch.autograd.grad(ours, x, w)
    (b,) = torch.autograd.grad(ref, x, w)
    torch.testing.assert_close(a, b, **F32, equal_nan=True)
    return ours


SHAPES = [(1, 1), (1, 5), (7, 3), (4, 11, 1), (2, 5, 3, 1), (3, 4, 2, 3), (13,), (1,)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore", [0.0, 0.4])
def test_cross_entropy_equals_torch(shape, reduction, eps, ignore):
    x, t = _case(shape, seed=len(shape) * 100 + shape[0], ignore_frac=ignore)
    _same(x, t, reduction=reduction, label_smoothing=eps)


@given(
    n=st.integers(1, 5),
    c=st.integers(1, 9),
    extra=st.lists(st.integers(1, 4), max_size=2),
    reduction=st.sampled_from(["none", "mean", "sum"]),
    eps=st.floats(0.0, 1.0),
    ignore_index=st.sampled_from([-100, -1, 0, 2]),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_equals_torch_random(n, c, extra, reduction, eps, ignore_index, seed):
    x, t = _case((n, c, *extra), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    t = torch.where(torch.rand(t.shape, generator=g) < 0.3, torch.tensor(ignore_index), t)
    _same(x, t, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_huge_logits_stay_finite(reduction, eps):
    x = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4], [5e3, 1e4, 1e4]], requires_grad=True)
    t = torch.tensor([2, 2, 0])
    loss = _same(x, t, reduction=reduction, label_smoothing=eps)
    assert torch.isfinite(loss).all()
    (gx,) = torch.autograd.grad(L.cross_entropy(x, t, reduction="sum"), x)
    assert torch.isfinite(gx).all()


def test_cross_entropy_non_contiguous_layout_b_t_c():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 7, generator=g).requires_grad_()  # (B, T, C)
    t = torch.randint(0, 7, (2, 5), generator=g)
    t[1, 3:] = -100
    xt = x.transpose(1, 2)  # (B, C, T), a view
    assert not xt.is_contiguous()
    _same(xt, t, label_smoothing=0.1)
    flat = L.cross_entropy(x.reshape(-1, 7), t.reshape(-1), label_smoothing=0.1)
    torch.testing.assert_close(flat, L.cross_entropy(xt, t, label_smoothing=0.1), **F32)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x, t = torch.randn(3, 4), torch.full((3,), -100)
    assert torch.isnan(L.cross_entropy(x, t)) and torch.isnan(F.cross_entropy(x, t))
    assert L.cross_entropy(x, t, reduction="sum") == 0
    assert torch.equal(L.cross_entropy(x, t, reduction="none"), torch.zeros(3))


def test_cross_entropy_is_the_seed_formula_with_one_hot_targets():
    """L = -sum_i y_i log p_i with one-hot y is -log p(true class)."""
    x, t = _case((6, 5), seed=4)
    y = F.one_hot(t, 5).float()
    seed_formula = -(y * torch.log(torch.softmax(x, 1))).sum(1)
    torch.testing.assert_close(L.cross_entropy(x, t, reduction="none"), seed_formula, **F32)
    q = 0.9 * y + 0.1 / 5
    smoothed = -(q * torch.log_softmax(x, 1)).sum(1)
    torch.testing.assert_close(
        L.cross_entropy(x, t, reduction="none", label_smoothing=0.1), smoothed, **F32
    )


@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_float64_gradcheck(eps, reduction):
    x, t = _case((3, 4, 2), seed=5, dtype=torch.float64, ignore_frac=0.3)
    assert torch.autograd.gradcheck(
        lambda z: L.cross_entropy(z, t, reduction=reduction, label_smoothing=eps), (x,)
    )


@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_closed_form_gradient_is_p_minus_y(eps):
    x, t = _case((5, 6), seed=6, dtype=torch.float64)
    (auto,) = torch.autograd.grad(L.cross_entropy(x, t, reduction="sum", label_smoothing=eps), x)
    torch.testing.assert_close(L.cross_entropy_grad(x, t, eps), auto, rtol=1e-7, atol=1e-12)
    (mean,) = torch.autograd.grad(F.cross_entropy(x, t, label_smoothing=eps), x)
    torch.testing.assert_close(L.cross_entropy_grad(x, t, eps) / 5, mean, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize(
    "logits, target, kwargs, exc, message",
    [
        (torch.randn(2, 5), torch.tensor([1, 2, 3]), {}, ValueError,
         r"target shape \(3,\) does not match logits shape \(2, 5\): expected \(2,\)"),
        (torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), {}, ValueError,
         r"target shape \(2, 5\) does not match logits shape \(2, 5, 3\): expected \(2, 3\)"),
        (torch.randn(2, 5), torch.tensor([1, 5]), {}, ValueError,
         r"target holds 5, outside \[0, 5\) for 5 classes and not ignore_index=-100"),
        (torch.randn(2, 5), torch.tensor([-1, 0]), {}, ValueError, "target holds -1"),
        (torch.randn(2, 5), torch.tensor([1, 2]), dict(label_smoothing=1.5), ValueError,
         r"label_smoothing must be in \[0, 1\], got 1.5"),
        (torch.randn(2, 5), torch.tensor([1, 2]), dict(label_smoothing=-0.1), ValueError,
         "label_smoothing must be in"),
        (torch.randn(2, 5), torch.tensor([1, 2]), dict(reduction="avg"), ValueError,
         "reduction must be one of none, mean, sum; got 'avg'"),
        (torch.randn(2, 5), torch.tensor([1.0, 2.0]), {}, TypeError,
         "target must hold integer class ids"),
        (torch.tensor([[1, 2]]), torch.tensor([0]), {}, TypeError,
         "logits must be a floating-point tensor"),
        (torch.randn(2, 5), [1, 2], {}, TypeError, "target must be a torch.Tensor"),
        (torch.tensor(1.0), torch.tensor(0), {}, ValueError, "logits must have a class dim"),
        (torch.randn(2, 5), torch.tensor([1, 2]), dict(ignore_index=1.0), TypeError,
         "ignore_index must be an int"),
    ],
)  # fmt: skip
def test_cross_entropy_bad_input(logits, target, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        L.cross_entropy(logits, target, **kwargs)


def test_cross_entropy_grad_bad_input():
    with pytest.raises(ValueError, match=r"logits must be \(N, C\)"):
        L.cross_entropy_grad(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        L.cross_entropy_grad(torch.randn(2, 3), torch.zeros(2, dtype=torch.long), 2.0)
    with pytest.raises(ValueError, match="target holds 3"):
        L.cross_entropy_grad(torch.randn(2, 3), torch.tensor([0, 3]))


# --------------------------------------------------------------------------- perplexity


def test_perplexity_of_uniform_model_is_vocabulary_size():
    for v in (1, 2, 65, 50257):
        x, t = torch.zeros(4, v), torch.randint(0, v, (4,))
        assert L.perplexity(L.cross_entropy(x, t)) == pytest.approx(v, rel=1e-5)
    assert L.perplexity(0.0) == 1.0
    assert L.perplexity(torch.tensor(math.log(10.0), dtype=torch.float64)) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "value, exc, message",
    [
        (-0.5, ValueError, "mean_nll must be >= 0"),
        (float("nan"), ValueError, "mean_nll must be >= 0"),
        (torch.ones(3), ValueError, r"mean_nll must be one number \(a mean\), got shape \(3,\)"),
        ("2.0", TypeError, "mean_nll must be a number"),
        (True, TypeError, "mean_nll must be a number"),
    ],
)
def test_perplexity_bad_input(value, exc, message):
    with pytest.raises(exc, match=message):
        L.perplexity(value)


def test_module_imports_no_other_course_module_but_validate():
    source = Path(L.__file__).read_text(encoding="utf-8")
    rest = source.replace("course_lib.losses", "").replace("from course_lib.validate import", "")
    assert "course_lib" not in rest


# --------------------------------------------------------------------------- baselines


def _counted_baselines(train: list[int], evals: list[int], v: int, k: float) -> dict[str, float]:
    """The three baselines by a different route: Counter, dict look-ups and math.log in a loop."""
    uni, pairs = Counter(train), Counter(zip(train, train[1:], strict=False))
    after = Counter(a for a, _ in zip(train, train[1:], strict=False))  # count(a, .)
    nll = {"uniform": 0.0, "unigram": 0.0, "bigram": 0.0}
    for a, b in zip(evals, evals[1:], strict=False):
        nll["uniform"] -= math.log(1 / v)
        nll["unigram"] -= math.log((uni[b] + k) / (len(train) + k * v))
        nll["bigram"] -= math.log((pairs[a, b] + k) / (after[a] + k * v))
    return {name: total / (len(evals) - 1) for name, total in nll.items()}


def test_baselines_hand_computed_three_token_example():
    # V = 3, train 0 1 1, k = 1. Unigram counts + 1: (2, 3, 1) / 6. Pairs (0, 1) and (1, 1):
    # rows 0 and 1 both (1, 2, 1) / 4. Scored targets of 0 1 2: 1 after 0, then 2 after 1.
    got = L.baseline_losses([0, 1, 1], [0, 1, 2], 3, k=1)
    assert got["uniform"] == math.log(3)
    assert got["unigram"] == pytest.approx(-(math.log(3 / 6) + math.log(1 / 6)) / 2, rel=1e-12)
    assert got["bigram"] == pytest.approx(-(math.log(2 / 4) + math.log(1 / 4)) / 2, rel=1e-12)


@pytest.mark.parametrize("k", [1.0, 0.1, 0.5, 3])
def test_baselines_equal_a_direct_count(k):
    train_text, eval_text = "abracadabra cadabra\n", "a bad cab, abracadabra!\n"
    chars = sorted(set(train_text + eval_text))  # ',' and '!' never occur in training
    ids = {c: i for i, c in enumerate(chars)}
    train, evals = [ids[c] for c in train_text], [ids[c] for c in eval_text]
    want = _counted_baselines(train, evals, len(chars), k)
    got = L.baseline_losses(train, evals, len(chars), k=k)
    assert list(got) == ["uniform", "unigram", "bigram"]
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name
    assert got["uniform"] == math.log(len(chars))  # exactly, not approximately
    # the same numbers from a tensor, a NumPy array and a non-contiguous view
    as_tensor = torch.tensor(train)
    assert L.baseline_losses(as_tensor, np.array(evals), len(chars), k=k) == got
    assert L.baseline_losses(as_tensor.repeat_interleave(2)[::2], evals, len(chars), k=k) == got


def test_uniform_baseline_is_ln_v_exactly_and_large_vocabularies_fit_in_memory():
    for v in (3, 65, 50257, 10**6):  # a (V, V) float64 table of 10**6 would be 8 TB
        got = L.baseline_losses([0, 0, 1, 0], [0, 0, 2], v, k=1)
        assert got["uniform"] == math.log(v)
        # unigram (3 + 1) / (4 + V) then (0 + 1) / (4 + V); bigram: 0 -> 0 seen once of the
        # two pairs from 0, (1 + 1) / (2 + V); 0 -> 2 never, (0 + 1) / (2 + V)
        unigram = -(math.log(4 / (4 + v)) + math.log(1 / (4 + v))) / 2
        bigram = -(math.log(2 / (2 + v)) + math.log(1 / (2 + v))) / 2
        assert got["unigram"] == pytest.approx(unigram, rel=1e-12)
        assert got["bigram"] == pytest.approx(bigram, rel=1e-12)


def test_library_baselines_equal_what_notebook_05_shows():
    """Notebook 05 counts the three models by hand and prints their losses: the library agrees."""
    from course_lib import data, tokenizers

    cells = {c["id"]: c for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]}
    printed = "".join("".join(o.get("text", "")) for o in cells["c025"]["outputs"])
    n_scored = int(re.search(r"scoring ([\d,]+) validation", printed).group(1).replace(",", ""))
    shown = dict(re.findall(r"(\w+): cross-entropy (\d+\.\d+) nats/char", printed))
    assert set(shown) == {"uniform", "unigram", "bigram"}
    corpus = data.corpus_for_profile("ci")  # the profile the stored outputs come from
    train_text = data.load_corpus("train", corpus)
    tok = tokenizers.CharTokenizer.train(train_text)
    val = tok.encode(data.load_corpus("val", corpus)[: n_scored + 1])
    got = L.baseline_losses(tok.encode(train_text), val, tok.vocab_size)
    for name, value in shown.items():
        assert got[name] == pytest.approx(float(value), abs=5e-5), name


@pytest.mark.parametrize(
    "args, kwargs, exc, message",
    [
        (("abc", [0, 1], 3), {}, TypeError, "train_ids must be a sequence of integer token ids"),
        (
            (5, [0, 1], 3),
            {},
            TypeError,
            "train_ids must be a sequence of integer token ids, got int",
        ),
        (
            ([0.0, 1.0], [0, 1], 3),
            {},
            TypeError,
            "train_ids must hold integer token ids, got dtype",
        ),
        (([True, False], [0, 1], 3), {}, TypeError, "train_ids must hold integer token ids"),
        (([0, "a"], [0, 1], 3), {}, TypeError, "train_ids must hold integer token ids"),
        (([[0, 1], [1, 0]], [0, 1], 3), {}, ValueError, r"train_ids must be one-dimensional"),
        (
            (torch.tensor(4), [0, 1], 9),
            {},
            ValueError,
            r"train_ids must be one-dimensional, got shape \(\)",
        ),
        (([0, 1], [0], 3), {}, ValueError, "eval_ids must hold at least 2 token ids .* got 1"),
        (([0, 1], [0, 3], 3), {}, ValueError, "eval_ids holds id 3, not in this vocabulary of 3"),
        (([0, -1], [0, 1], 3), {}, ValueError, "train_ids holds id -1"),
        (([0, 1], [0, 1], 0), {}, ValueError, "vocab_size must be a positive integer, got 0"),
        (([0, 1], [0, 1], 3.0), {}, TypeError, "vocab_size must be an integer, got float"),
        (([0, 1], [0, 1], 3), {"k": 0}, ValueError, "k must be a finite number > 0"),
        (([0, 1], [0, 1], 3), {"k": math.inf}, ValueError, "k must be a finite number > 0"),
        (([0, 1], [0, 1], 3), {"k": "0.1"}, TypeError, "k must be a number .* got str"),
        (([0, 1], [0, 1], 3), {"k": True}, TypeError, "k must be a number .* got bool"),
    ],
)
def test_baselines_bad_input(args, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        L.baseline_losses(*args, **kwargs)


# --------------------------------------------------------------------------- exercises
# The answer key (course_lib.exercises.nb05) is what each check cell calls: right answers pass
# and each named mistake is recognised, tried here without running the notebook.


def _nll(logits, target):  # -log p(target) at every position, padding scored as class 0
    lp = torch.log_softmax(logits, dim=-1)
    return -lp.gather(-1, target.clamp(min=0)[..., None])[..., 0]


def _verdicts(exercise, *bodies):
    return [exercise(body, quiet=True).message for body in bodies]


def test_exercise_stable_log_softmax_wrong_answers_are_named():
    def right(z):
        shifted = z - z.amax(dim=-1, keepdim=True)
        return shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))

    def log_of_softmax(z):
        e = torch.exp(z - z.amax(dim=-1, keepdim=True))
        return torch.log(e / e.sum(dim=-1, keepdim=True))

    def wrong_axis(z):
        m = z.amax(dim=0, keepdim=True)
        return (z - m) - torch.log(torch.exp(z - m).sum(dim=0, keepdim=True))

    def unshifted(z):
        return torch.log(torch.exp(z) / torch.exp(z).sum(dim=-1, keepdim=True))

    ok, no_shift, logsm, axis = _verdicts(
        nb05.stable_log_softmax, right, unshifted, log_of_softmax, wrong_axis
    )
    assert ok == "right: all 5 cases pass. Well done!"
    assert "case 'logits of 1e4' does not" in no_shift
    assert "hint: this looks like the log of the unshifted softmax" in no_shift
    assert "hint: this looks like the log of a (shifted) softmax" in logsm
    assert "hint: this looks like the maximum taken over the wrong axis" in axis


def test_exercise_ce_grad_wrong_answers_are_named():
    def one_hot(logits, target):
        return F.one_hot(target, logits.shape[1]).to(logits.dtype)

    def right(logits, target):
        return (torch.softmax(logits, dim=-1) - one_hot(logits, target)) / len(target)

    def summed(logits, target):
        return torch.softmax(logits, dim=-1) - one_hot(logits, target)

    def flipped(logits, target):
        return (one_hot(logits, target) - torch.softmax(logits, dim=-1)) / len(target)

    def no_one_hot(logits, target):
        return torch.softmax(logits, dim=-1) / len(target)

    ok, s, f, n = _verdicts(nb05.ce_grad, right, summed, flipped, no_one_hot)
    assert ok == "right: all 4 cases pass. Well done!"
    assert "hint: this looks like the gradient of the sum" in s
    assert "hint: this looks like the sign flipped" in f
    assert "hint: this looks like the one-hot target left out" in n


def test_exercise_padded_perplexity_wrong_answers_are_named():
    def right(logits, target):
        return math.exp(_nll(logits, target)[target != -100].mean().item())

    def padding_counted(logits, target):
        return math.exp((_nll(logits, target) * (target != -100)).sum().item() / target.numel())

    def per_sequence(logits, target):
        real = target != -100
        return ((_nll(logits, target) * real).sum(1) / real.sum(1)).exp().mean().item()

    def pad_as_zero(logits, target):
        return math.exp(_nll(logits, target).mean().item())

    ok, counted, per_seq, zero = _verdicts(
        nb05.padded_perplexity, right, padding_counted, per_sequence, pad_as_zero
    )
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like padding counted in the mean" in counted
    assert "hint: this looks like the mean of per-sequence perplexities" in per_seq
    assert "hint: this looks like padding scored as token 0" in zero
