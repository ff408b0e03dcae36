"""Normalisation layers: layer norm (the 2017-2019 Transformers) and RMS norm (most open models
since Llama), each by hand and proven equal to PyTorch's.

    y = layer_norm(x, weight, bias, eps=1e-5)    # x: (..., D) -> (..., D)
    y = rms_norm(x, weight, eps=1e-5)            # x: (..., D) -> (..., D)
    norm = make_norm("rms", d_model=64)          # the module a GPTConfig's `norm` names

- `layer_norm` / `LayerNorm`: subtract the mean, divide by the standard deviation, then scale
  and shift; equal to `nn.LayerNorm` / `F.layer_norm` (tests).
- `rms_norm` / `RMSNorm`: no mean and no shift: divide by the root mean square, then scale;
  equal to `nn.RMSNorm` / `F.rms_norm` with the same eps (tests). One statistic per vector
  instead of two, D parameters instead of 2D.

Both normalise each vector over its last dimension on its own (never across the batch or the
sequence). This module imports no other course module but `validate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validate import positive_int

NORMS = ("layer", "rms")  # the values of GPTConfig.norm


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float):
        raise TypeError(f"eps must be a positive number, got {type(eps).__name__} {eps!r}")
    if not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return float(eps)


def _check_weight(x: torch.Tensor, weight: torch.Tensor | None) -> None:
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(
            f"weight must have shape ({x.shape[-1]},) to match x's last dimension, "
            f"got {tuple(weight.shape)}"
        )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Normalise each vector over its last dimension, then scale and shift.

    x: (..., D); weight, bias: (D,) or None. (x - mean) / sqrt(var + eps) * weight + bias, with
    the biased variance (divide by D, not D - 1), as `F.layer_norm` does.
    """
    _check_weight(x, weight)
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """Divide each vector by its root mean square over the last dimension, then scale.

    x: (..., D); weight: (D,) or None. x / sqrt(mean(x^2) + eps) * weight, as `F.rms_norm`
    does: no mean is subtracted and there is no shift, so a vector keeps its direction.
    """
    _check_weight(x, weight)
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y if weight is None else y * weight


class LayerNorm(nn.Module):
    """Layer norm by hand, with a learned scale (ones) and shift (zeros) of width d_model.

    fused=True calls `F.layer_norm` (one kernel; the tests hold it equal to `layer_norm`);
    bias=False drops the shift (GPT models trained without biases)."""

    def __init__(self, d_model: int, eps: float = 1e-5, fused: bool = False, bias: bool = True):
        super().__init__()
        d_model = positive_int(d_model, "d_model")
        self.eps, self.fused = eps, fused
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMS norm by hand, with a learned scale (ones) of width d_model and no shift.

    fused=True calls `F.rms_norm` (the tests hold it equal to `rms_norm` and `nn.RMSNorm`).
    Its one parameter is `weight`, as in `nn.RMSNorm` and in Llama's checkpoints."""

    def __init__(self, d_model: int, eps: float = 1e-5, fused: bool = False):
        super().__init__()
        d_model = positive_int(d_model, "d_model")
        self.eps, self.fused = _check_eps(eps), fused
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return rms_norm(x, self.weight, self.eps)


def make_norm(
    kind: str, d_model: int, eps: float = 1e-5, fused: bool = False, bias: bool = True
) -> LayerNorm | RMSNorm:
    """The norm `kind` names ("layer" or "rms") of width d_model. An RMS norm has no shift,
    so `bias` applies to layer norm only."""
    if kind == "layer":
        return LayerNorm(d_model, eps, fused=fused, bias=bias)
    if kind == "rms":
        return RMSNorm(d_model, eps, fused=fused)
    raise ValueError(f"norm must be one of {list(NORMS)}, got {kind!r}")


def norm_parameters(kind: str, d_model: int, bias: bool = True) -> int:
    """Parameters of one norm: layer 2D (scale and shift; D without the shift), rms D."""
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {kind!r}")
    return 2 * d_model if kind == "layer" and bias else d_model
