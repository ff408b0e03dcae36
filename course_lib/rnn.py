"""Recurrent text generators: the seed's LSTM listing (section 4.3), corrected, and a GRU.

    model = RNNGenerator(RNNConfig(vocab_size=100, embedding_dim=32, hidden_dim=64))
    inputs, targets = next_token_batch(ids)        # ids: (batch, T + 1)
    logits = model(inputs)                          # (batch, T, vocab_size)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())

The chain is embedding (V -> E) -> recurrent layers (E -> H, then H -> H) -> linear (H -> V):
each layer's input width is the previous layer's output width, and the recurrent state is H
wide, not V wide. Layout is batch first: (batch, seq, ...). Notebook 08 trains these models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.validate import fraction, positive_int

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RNNConfig:
    """Sizes of a recurrent generator; cell is 'lstm' or 'gru'."""

    vocab_size: int
    embedding_dim: int
    hidden_dim: int
    num_layers: int = 2
    cell: str = "lstm"
    dropout: float = 0.0  # between recurrent layers (needs num_layers >= 2 to act)

    def __post_init__(self):
        for name in ("vocab_size", "embedding_dim", "hidden_dim", "num_layers"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        object.__setattr__(self, "dropout", fraction(self.dropout, "dropout"))


class RNNGenerator(nn.Module):
    """Embedding -> LSTM/GRU layers -> Linear to the vocabulary.

    forward(ids (B, T), state=None) -> logits (B, T, V); with return_state=True also the final
    recurrent state (for generation one token at a time). Position t's logits score the token
    at t + 1, and depend only on ids[:, :t + 1] (a recurrent layer reads left to right).
    """

    def __init__(self, config: RNNConfig):
        super().__init__()
        if not isinstance(config, RNNConfig):
            raise TypeError(f"config must be an RNNConfig, got {type(config).__name__}")
        c = self.config = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.rnn = CELLS[c.cell](
            c.embedding_dim,
            c.hidden_dim,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.fc = nn.Linear(c.hidden_dim, c.vocab_size)

    def forward(self, ids: torch.Tensor, state=None, return_state: bool = False):
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
            raise TypeError("ids must be an integer tensor of token ids (batch, seq)")
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, seq), got shape {tuple(ids.shape)}")
        if ids.shape[1] == 0:  # a recurrent layer needs at least one step to read
            raise ValueError(f"ids must hold at least one position, got shape {tuple(ids.shape)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(
                f"ids must lie in [0, {self.config.vocab_size}), got {ids.min()}..{ids.max()}"
            )
        x = self.embedding(ids)  # (B, T, E)
        h, state = self.rnn(x, state)  # (B, T, H)
        logits = self.fc(h)  # (B, T, V)
        return (logits, state) if return_state else logits


def parameters_by_formula(config: RNNConfig) -> int:
    """Parameters of RNNGenerator(config): embedding, each recurrent layer's gates, the linear.

    A layer with input width I and state width H has G gate blocks (LSTM 4, GRU 3), each with
    an input matrix (H, I), a recurrent matrix (H, H) and two biases (PyTorch keeps b_ih and b_hh).
    """
    if not isinstance(config, RNNConfig):
        raise TypeError(f"config must be an RNNConfig, got {type(config).__name__}")
    c, gates = config, {"lstm": 4, "gru": 3}[config.cell]
    total = c.vocab_size * c.embedding_dim
    for layer in range(c.num_layers):
        width_in = c.embedding_dim if layer == 0 else c.hidden_dim
        total += gates * (c.hidden_dim * width_in + c.hidden_dim * c.hidden_dim + 2 * c.hidden_dim)
    return total + c.hidden_dim * c.vocab_size + c.vocab_size


def next_token_batch(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T + 1) token ids -> inputs (B, T) = ids[:, :-1], targets (B, T) = ids[:, 1:]."""
    if ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids must be (batch, seq >= 2), got shape {tuple(ids.shape)}")
    return ids[:, :-1], ids[:, 1:]
