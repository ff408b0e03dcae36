"""course_lib.interpret: attention maps, hidden states, the logit lens and linear probes."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from course_lib import interpret
from course_lib.transformer import GPT, GPTConfig


def gpt(seed=0, **kw) -> GPT:
    sizes = dict(vocab_size=17, block_size=12, d_model=16, n_heads=2, n_layers=3, d_ff=24)
    torch.manual_seed(seed)
    return GPT(GPTConfig(**sizes, **{"init_std": 0.2, "fast": True, **kw})).eval()


def ids(b=2, t=9, seed=1):
    return torch.randint(0, 17, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_attention_maps_are_the_slow_paths_weights(position):
    model = gpt(position=position)
    x = ids(1)
    maps = interpret.attention_maps(model, x)
    assert maps.shape == (3, 2, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 2, 9))
    assert (maps.triu(1) == 0).all()  # causal: nothing from the future
    # against the attention computed by hand from the first block's projections
    block = model.blocks[0]
    h = block.norm1(model.tok_emb(x) + (model.pos_emb.weight[:9] if position == "learned" else 0))
    if position == "learned":
        q = block.self_attn.q_proj(h).view(1, 9, 2, 8).transpose(1, 2)
        k = block.self_attn.k_proj(h).view(1, 9, 2, 8).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1) / 8**0.5).masked_fill(
            torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf")
        )
        torch.testing.assert_close(maps[0], scores.softmax(-1)[0], rtol=1e-5, atol=1e-6)


def test_attention_maps_leave_the_model_alone_and_check_input():
    model = gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    interpret.attention_maps(model, ids(1))
    assert model.config.fast and all(
        torch.equal(v, model.state_dict()[k]) for k, v in before.items()
    )
    with pytest.raises(ValueError, match="one sequence"):
        interpret.attention_maps(model, ids(2))
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        interpret.attention_maps(model, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="must be a course_lib.transformer.GPT"):
        interpret.attention_maps(nn.Linear(2, 2), ids(1))


def test_hidden_states_are_the_residual_stream():
    model, x = gpt(), ids()
    states = interpret.hidden_states(model, x)
    assert len(states) == 4 and all(s.shape == (2, 9, 16) for s in states)
    torch.testing.assert_close(states[0], model.tok_emb(x) + model.pos_emb.weight[:9])
    torch.testing.assert_close(model.head(model.norm(states[-1])), model(x))
    # the hooks are gone afterwards
    assert not model.blocks[0]._forward_pre_hooks and not model.blocks[1]._forward_hooks


def test_logit_lens_ends_in_the_models_output_and_its_losses():
    model, x = gpt(), ids()
    lens = interpret.logit_lens(model, x)
    assert lens.shape == (4, 2, 9, 17)
    torch.testing.assert_close(lens[-1], model(x))
    losses = interpret.lens_losses(model, x)
    want = F.cross_entropy(model(x)[:, :-1].flatten(0, 1), x[:, 1:].flatten()).item()
    assert len(losses) == 4 and losses[-1] == pytest.approx(want, rel=1e-5)


def test_inside_brackets():
    text = "ab [Exit X.] c [Aside]"
    got = interpret.inside_brackets(text)
    want = [False] * 4 + [True] * 7 + [False] * 5 + [True] * 5 + [False]
    assert got.tolist() == want and len(got) == len(text)
    assert interpret.inside_brackets("").shape == (0,)


def test_balanced_sample():
    labels = torch.tensor([1, 0, 0, 0, 1, 0, 0, 1, 0, 0], dtype=torch.bool)
    candidates = torch.ones(10, dtype=torch.bool)
    candidates[7] = False
    idx = interpret.balanced_sample(labels, candidates, torch.Generator().manual_seed(0))
    assert idx.tolist() == sorted(idx.tolist()) and len(idx) == 4
    assert labels[idx].sum() == 2 and candidates[idx].all()
    with pytest.raises(ValueError, match="no example of one of the two classes"):
        interpret.balanced_sample(labels, ~labels & candidates, torch.Generator())
    with pytest.raises(ValueError, match=r"must be \(N,\) masks"):
        interpret.balanced_sample(labels, candidates[:5], torch.Generator())


def test_probe_equals_sklearn_logistic_regression():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 5, generator=g) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + 2
    y = x[:, 0] - 0.2 * x[:, 1] + torch.randn(300, generator=g) > 0
    probe = interpret.train_probe(x, y, weight_decay=1e-3)
    # sklearn on the standardised features, with the same L2 penalty: C = 1 / (2 n lambda)
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=1 / (2 * 300 * 1e-3), tol=1e-10, max_iter=10_000).fit(z, y)
    ours = probe(x)[:, 0].detach()
    theirs = torch.tensor(ref.decision_function(z), dtype=torch.float32)
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)
    acc = interpret.probe_accuracy(probe, x, y)
    assert acc == pytest.approx(ref.score(z, y), abs=1 / 300)


def test_probe_separates_what_is_separable():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([False, False, True, True])
    assert interpret.probe_accuracy(interpret.train_probe(x, y), x, y) == 1.0


def test_probe_bad_input():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="both classes"):
        interpret.train_probe(x, torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"features must be \(N, D\)"):
        interpret.train_probe(x, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        interpret.train_probe(x, torch.tensor([0, 1, 0, 1]).bool(), steps=0)
    with pytest.raises(ValueError, match="N >= 1"):
        interpret.probe_accuracy(nn.Linear(2, 1), x[:0], torch.zeros(0, dtype=torch.bool))
