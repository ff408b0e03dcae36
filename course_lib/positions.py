"""Positions: the Transformer's sinusoidal encoding and rotary position embeddings (RoPE).

    >>> from course_lib import positions as P
    >>> P.sinusoidal_encoding(128, 64)         # (positions, dim)
    >>> P.apply_rope(q)                        # rotary position embedding of (..., seq, dim)
    >>> P.rope_rotate(q, positions=pos)        # the same, as one complex product (models)

Notebook 02 teaches both; `course_lib.embeddings` re-exports them. This module imports no other
course module but the argument checks of `course_lib.validate`.
"""

from __future__ import annotations

import functools
import weakref

import torch

from course_lib.validate import int_at_least


def _even_dim(name: str, value: object) -> int:
    value = int_at_least(value, name, 2)
    if value % 2:
        raise ValueError(f"{name} must be even (dimensions come in sin/cos pairs), got {value}")
    return value


def _tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def sinusoidal_encoding(
    num_positions: int, dim: int, base: float = 10_000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The Transformer's fixed position vectors (Vaswani et al. 2017): (num_positions, dim).

    PE[p, 2i] = sin(p / base ** (2i / dim)),  PE[p, 2i + 1] = cos(p / base ** (2i / dim)):
    pair i turns at frequency base ** (-2i / dim), from one radian per position (i = 0) down to
    about 1 / base. Computed in float64, returned in `dtype`.
    """
    num_positions = int_at_least(num_positions, "num_positions", 1)
    dim = _even_dim("dim", dim)
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    pos = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    angles = pos * freq  # (T, dim/2)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (T, dim/2, 2): sin, cos interleaved
    return pe.reshape(num_positions, dim).to(dtype)


def rope_frequencies(dim: int, base: float = 10_000.0) -> torch.Tensor:
    """RoPE's rotation speeds theta_i = base ** (-2i / dim) for i = 0 .. dim/2 - 1.

    Returns (dim/2,) float64: the same frequencies as the sinusoidal encoding's pairs.
    """
    dim = _even_dim("dim", dim)
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


@functools.lru_cache(maxsize=64)
def _rope_rotations(seq: int, dim: int, base: float, device: torch.device) -> torch.Tensor:
    # Kept across calls, so never an inference tensor: a first call under torch.inference_mode
    # (sampling) must not break a later backward pass through the same rotations.
    with torch.inference_mode(False), torch.no_grad():
        angles = torch.arange(seq, dtype=torch.float64).unsqueeze(-1) * rope_frequencies(dim, base)
        return torch.polar(torch.ones_like(angles), angles).to(device, torch.complex64)


# The last gathered rotations, with a weak reference to their positions: a model's layers all
# rotate by the same positions tensor (2 calls a layer), which is then gathered once.
_last_gathered: list = [None]


def _rotations_at(positions: torch.Tensor, dim: int, base: float, device) -> torch.Tensor:
    key = (positions._version, dim, base, device)
    memo = _last_gathered[0]
    if memo is not None and memo[0]() is positions and memo[1] == key:
        return memo[2]
    longest = 1 << int(positions.max()).bit_length()  # a power of two: few tables kept
    rot = _rope_rotations(longest, dim, base, device)[positions]
    rot = rot if positions.dim() == 1 else rot[:, None]  # (B, 1, seq, dim/2): every head
    _last_gathered[0] = (weakref.ref(positions), key, rot)
    return rot


def rope_rotate(
    x: torch.Tensor, base: float = 10_000.0, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """`apply_rope` as one complex multiplication: each pair (x_2i, x_2i+1) is the complex
    number x_2i + i x_2i+1, and rotating it by m theta_i is multiplying by e^(i m theta_i). The
    rotations are computed once per (length, dim, device) and kept: the form a model calls in
    every layer. x: (..., seq, dim), any float dtype (the product is taken in float32).
    positions: None for 0 .. seq-1; (seq,) ints; or (B, seq) ints for x (B, H, seq, dim), one
    row of positions per sequence (a cache's new tokens, a left-padded batch)."""
    seq, dim = x.shape[-2], x.shape[-1]
    dim = _even_dim("dim", dim)
    if positions is None:
        rot = _rope_rotations(seq, dim, float(base), x.device)
    else:
        if positions.shape[-1] != seq or positions.dim() > 2 or positions.is_floating_point():
            raise ValueError(
                f"positions must be ints of shape ({seq},) or (batch, {seq}), "
                f"got {positions.dtype} {tuple(positions.shape)}"
            )
        rot = _rotations_at(positions, dim, float(base), x.device)
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], dim // 2, 2))
    return torch.view_as_real(pairs * rot).flatten(-2).to(x.dtype)


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10_000.0
) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, RoFormer): x (..., seq, dim) -> same shape.

    Dimensions (2i, 2i+1) of the vector at position m form a point in the plane, rotated by the
    angle m * theta_i (see `rope_frequencies`). Rotations preserve length, and the dot product
    of a rotated query at m with a rotated key at n depends only on m - n. positions: (seq,)
    integers or floats; default 0 .. seq-1. This is the interleaved layout of the paper; many
    implementations (GPT-NeoX, Hugging Face's Llama) rotate dimension i with i + dim/2 instead,
    which is the same operation on a permuted vector.
    """
    x = _tensor("x", x)
    if x.dim() < 2:
        raise ValueError(f"x must be (..., seq, dim), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    seq, dim = x.shape[-2], x.shape[-1]
    freq = rope_frequencies(dim, base)
    if positions is None:
        positions = torch.arange(seq)
    positions = _tensor("positions", positions)
    if positions.shape != (seq,):
        raise ValueError(f"positions must have shape ({seq},), got {tuple(positions.shape)}")
    # Angles in float64 on the CPU (exact enough for long sequences, and MPS has no float64),
    # then cast to x's dtype and device.
    angles = positions.detach().cpu().to(torch.float64).unsqueeze(-1) * freq  # (seq, dim/2)
    cos = angles.cos().to(device=x.device, dtype=x.dtype)
    sin = angles.sin().to(device=x.device, dtype=x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., seq, dim/2) each
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2)
