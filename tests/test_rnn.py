"""course_lib.rnn: the seed's LSTM generator, corrected, and a GRU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import rnn


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_shapes_and_parameter_formula(cell, layers):
    cfg = rnn.RNNConfig(vocab_size=23, embedding_dim=7, hidden_dim=11, num_layers=layers, cell=cell)
    model = rnn.RNNGenerator(cfg)
    assert sum(p.numel() for p in model.parameters()) == rnn.parameters_by_formula(cfg)
    for b, t in [(1, 1), (3, 9)]:
        ids = torch.randint(0, 23, (b, t))
        logits, state = model(ids, return_state=True)
        assert logits.shape == (b, t, 23)
        h = state[0] if cell == "lstm" else state
        assert h.shape == (layers, b, 11)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_equals_the_layers_composed_by_hand(cell):
    torch.manual_seed(0)
    cfg = rnn.RNNConfig(vocab_size=19, embedding_dim=5, hidden_dim=6, num_layers=2, cell=cell)
    model = rnn.RNNGenerator(cfg)
    ids = torch.randint(0, 19, (2, 7))
    # the same weights through torch's layers, time-major, one step at a time for the last layer
    ref_rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](5, 6, num_layers=2)
    ref_rnn.load_state_dict(model.rnn.state_dict())
    x = model.embedding(ids).transpose(0, 1)  # (T, B, E)
    h, _ = ref_rnn(x)
    want = model.fc(h.transpose(0, 1))
    got = model(ids)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    gw = torch.autograd.grad(got.sum(), model.fc.weight)[0]
    gr = torch.autograd.grad(want.sum(), model.fc.weight)[0]
    torch.testing.assert_close(gw, gr, rtol=1e-5, atol=1e-6)


def test_causal_and_state_continues():
    torch.manual_seed(1)
    model = rnn.RNNGenerator(rnn.RNNConfig(13, 4, 8))
    ids = torch.randint(0, 13, (2, 8))
    full = model(ids)
    ids2 = ids.clone()
    ids2[:, 5] = (ids2[:, 5] + 1) % 13
    diff = (model(ids2) - full).abs().amax(dim=(0, 2))
    assert torch.all(diff[:5] == 0) and torch.all(diff[5:] > 0)
    first, state = model(ids[:, :5], return_state=True)
    rest = model(ids[:, 5:], state=state)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=1e-6)


def test_next_token_batch_and_loss():
    ids = torch.arange(12).view(2, 6)
    x, y = rnn.next_token_batch(ids)
    assert torch.equal(x, ids[:, :-1]) and torch.equal(y, ids[:, 1:])
    model = rnn.RNNGenerator(rnn.RNNConfig(12, 4, 8, cell="gru"))
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="seq >= 2"):
        rnn.next_token_batch(torch.zeros(2, 1, dtype=torch.long))


def test_the_seed_chain_fails_and_the_fix_does_not():
    # the seed's 4.3 widths: LSTM(E, H) -> LSTM(H, V) -> Linear(H, V): the linear gets V wide input
    emb, l1, l2, fc = nn.Embedding(20, 4), nn.LSTM(4, 6), nn.LSTM(6, 20), nn.Linear(6, 20)
    h, _ = l2(l1(emb(torch.randint(0, 20, (3, 2))))[0])
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        fc(h)
    assert rnn.RNNGenerator(rnn.RNNConfig(20, 4, 6))(torch.zeros(2, 3, dtype=torch.long)).shape == (
        2,
        3,
        20,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(vocab_size=0, embedding_dim=4, hidden_dim=4),
            "vocab_size must be a positive integer",
        ),
        (dict(vocab_size=5, embedding_dim=4, hidden_dim=4, cell="rnn"), "cell must be one of"),
        (dict(vocab_size=5, embedding_dim=4, hidden_dim=4, dropout=1.5), "dropout"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnn.RNNConfig(**kwargs)


def test_input_errors():
    model = rnn.RNNGenerator(rnn.RNNConfig(5, 4, 4))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        model(torch.tensor([[5]]))
    with pytest.raises(
        ValueError, match=r"ids must hold at least one position, got shape \(2, 0\)"
    ):
        model(torch.zeros(2, 0, dtype=torch.long))
    assert model(torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3, 5)  # an empty batch
    with pytest.raises(TypeError, match="RNNConfig"):
        rnn.RNNGenerator({"vocab_size": 5})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(vocab_size="5", embedding_dim=4, hidden_dim=4),
            "vocab_size must be an integer, got str",
        ),
        (dict(vocab_size=5, embedding_dim=4.0, hidden_dim=4), "embedding_dim must be an integer"),
        (
            dict(vocab_size=5, embedding_dim=4, hidden_dim=True),
            "hidden_dim must be an integer, got bool",
        ),
        (
            dict(vocab_size=5, embedding_dim=4, hidden_dim=4, dropout="0.1"),
            "dropout must be a number",
        ),
    ],
)
def test_config_errors_of_a_wrong_type(kwargs, message):
    with pytest.raises(TypeError, match=message):
        rnn.RNNConfig(**kwargs)


def test_config_stores_numpy_sizes_as_ints():
    c = rnn.RNNConfig(np.int64(5), np.int32(4), 4)
    assert type(c.vocab_size) is int and type(c.embedding_dim) is int
