"""The position-wise feed-forward layer (MLP) of a Transformer block: the 2017-2019 two-layer
MLP, and the gated MLP of most open models since (SwiGLU in Llama, GeGLU in Gemma).

    ffn = FeedForward(d_model=64, d_ff=256, activation="gelu")       # x: (B, T, 64)
    ffn = GatedFeedForward(d_model=64, d_ff=172, activation="silu")  # SwiGLU
    ffn = make_feed_forward("gated", 64, 172, "silu")                 # as a GPTConfig names it

- `FeedForward` ("plain"): fc2(act(fc1(x))), D -> d_ff -> D. Two matrices: 2·D·d_ff weights.
- `GatedFeedForward` ("gated"): down_proj(act(gate_proj(x)) * up_proj(x)). One projection,
  passed through the activation, gates another element by element. Three matrices: 3·D·d_ff
  weights, so at equal parameters its d_ff is 2/3 of the plain MLP's. With act = SiLU
  (x·sigmoid(x)) it is SwiGLU, with GELU GeGLU, with ReLU ReGLU (Shazeer, 2020, "GLU Variants
  Improve Transformer"). The names gate_proj, up_proj, down_proj are those of Llama's code.
- `swiglu(x, w_gate, w_up, w_down)`: the SwiGLU function by hand, for (B, T, D) inputs and
  weights stored as nn.Linear stores them, (out, in).

`ACTIVATIONS` maps a name to its function; "relu2" is the squared ReLU (So et al., 2021,
"Primer"). This module imports no other course module but `validate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validate import fraction, positive_int

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # the exact (erf) GELU, as BERT and nn.TransformerEncoderLayer use
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's approximation
    "silu": F.silu,  # x * sigmoid(x), also called swish: SwiGLU's gate
    "relu2": lambda x: F.relu(x).square(),  # squared ReLU (Primer)
}
MLPS = ("plain", "gated")  # the values of GPTConfig.mlp


def check_activation(activation: object) -> str:
    """`activation`, a key of ACTIVATIONS: ValueError naming the choices otherwise."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return activation


def _check_sizes(
    d_model: int, d_ff: int, activation: str, dropout: float
) -> tuple[int, int, float]:
    d_model, d_ff = positive_int(d_model, "d_model"), positive_int(d_ff, "d_ff")
    check_activation(activation)
    return d_model, d_ff, fraction(dropout, "dropout")


class FeedForward(nn.Module):
    """Position-wise MLP: (B, T, D) -> fc1 -> (B, T, d_ff) -> activation -> fc2 -> (B, T, D)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "gelu",
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        d_model, d_ff, dropout = _check_sizes(d_model, d_ff, activation, dropout)
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class GatedFeedForward(nn.Module):
    """Gated MLP: (B, T, D) -> act(gate_proj(x)) * up_proj(x), (B, T, d_ff) -> down_proj ->
    (B, T, D). activation="silu" is SwiGLU (Llama), "gelu" or "gelu_tanh" GeGLU (Gemma)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "silu",
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        d_model, d_ff, dropout = _check_sizes(d_model, d_ff, activation, dropout)
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.gate_proj(x)) * self.up_proj(x)  # (B, T, d_ff): the gate times a value
        return self.down_proj(self.drop(h))


def swiglu(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """SwiGLU by hand: (silu(x W_gate^T) * (x W_up^T)) W_down^T, no biases.

    x: (..., D); w_gate, w_up: (d_ff, D); w_down: (D, d_ff) (nn.Linear's (out, in) layout).
    silu(a) = a * sigmoid(a) = a / (1 + exp(-a)). Returns (..., D)."""
    d_ff, d = w_gate.shape
    if x.shape[-1] != d or w_up.shape != (d_ff, d) or w_down.shape != (d, d_ff):
        raise ValueError(
            f"shapes do not chain: x (..., {x.shape[-1]}), w_gate {tuple(w_gate.shape)}, "
            f"w_up {tuple(w_up.shape)}, w_down {tuple(w_down.shape)}; expected w_gate and w_up "
            "(d_ff, D), w_down (D, d_ff), x (..., D)"
        )
    gate = x @ w_gate.T  # (..., d_ff)
    return (gate / (1 + torch.exp(-gate)) * (x @ w_up.T)) @ w_down.T


def make_feed_forward(
    kind: str,
    d_model: int,
    d_ff: int,
    activation: str = "gelu",
    dropout: float = 0.0,
    bias: bool = True,
) -> FeedForward | GatedFeedForward:
    """The MLP `kind` names: "plain" (FeedForward) or "gated" (GatedFeedForward)."""
    if kind == "plain":
        return FeedForward(d_model, d_ff, activation, dropout, bias)
    if kind == "gated":
        return GatedFeedForward(d_model, d_ff, activation, dropout, bias)
    raise ValueError(f"mlp must be one of {list(MLPS)}, got {kind!r}")


def feed_forward_parameters(d_model: int, d_ff: int, mlp: str = "plain", bias: bool = True) -> int:
    """Parameters of one MLP. plain: fc1 (d_ff, D) + (d_ff,), fc2 (D, d_ff) + (D,); gated:
    gate_proj and up_proj (d_ff, D) + (d_ff,) each, down_proj (D, d_ff) + (D,). Without
    biases, the weights alone."""
    if mlp not in MLPS:
        raise ValueError(f"mlp must be one of {list(MLPS)}, got {mlp!r}")
    n_in = 1 if mlp == "plain" else 2  # matrices D -> d_ff
    weights = (n_in + 1) * d_model * d_ff
    return weights + (n_in * d_ff + d_model if bias else 0)
