"""Training memory: what a GPT's weights, gradients, AdamW moments and saved activations take,
estimated from its sizes and measured from real tensors; and the number formats behind the bytes.

    est = budget(config, batch_size=16)                        # MemoryBudget, all float32
    est = budget(config, 16, autocast_dtype=torch.bfloat16)    # mixed precision (autocast)
    got = measure(model, ids, targets)                         # bytes counted from tensors
    print(table(est, got))                                     # the two side by side
    with SavedTensors(model.parameters()) as saved:            # what autograd keeps for backward
        loss = ...
    saved.bytes
    float_format(torch.bfloat16)        # 1 sign, 8 exponent and 7 stored mantissa bits

Where the bytes are, for a model of N parameters trained with AdamW:

- weights: N float32 numbers, also under autocast (autocast casts a copy of each matmul weight
  to the low-precision dtype during the forward pass; the parameters themselves stay float32);
- gradients: N float32 numbers (a parameter's gradient has the parameter's dtype);
- AdamW moments: exp_avg and exp_avg_sq, 2N float32 numbers;
- activations: the tensors the forward pass saves for the backward pass (`activation_terms`
  derives them layer by layer). Under autocast the matmul inputs and outputs are saved in the
  low-precision dtype; the residual stream, the layer-norm statistics, attention's log-sum-exp
  and the log-probabilities of the loss stay float32.

The estimate covers the trainer's model: the course GPT on its fast path (`GPTConfig.fast`:
`F.scaled_dot_product_attention`, `F.layer_norm`), with the 2019 block (GPTConfig's default
norm, mlp, qk_norm and n_kv_heads; other blocks save other tensors: `measure` counts them).
Dropout is counted as CUDA runs it (one-byte masks; attention's dropout inside the fused
kernel, which keeps a random seed, not a mask); scalars (the loss's normaliser) and the
optimizer's step counters are left out. The sum of
the four components bounds what a step holds at once (gradients appear during the backward
pass as the activations are freed); temporary buffers (the logits, kernels' workspaces) come
on top. This module builds on `course_lib.transformer` (the config and the parameter count).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.transformer import GPT, GPTConfig, count_parameters, parameters_by_formula
from course_lib.validate import positive_int

COMPONENTS = ("weights", "gradients", "adam_moments", "activations")
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
FLOAT32 = 4  # bytes
INT64 = 8
COMPLEX64 = 8


# ============================================================================ number formats


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: sign, exponent and stored mantissa (fraction) bits.

    The stored mantissa bits follow an implicit leading 1, so the precision is stored + 1 bits:
    float32 stores 23 and has a precision of 24 bits, bfloat16 stores 7 (precision 8)."""

    name: str
    sign: int
    exponent: int
    mantissa: int  # stored mantissa bits

    @property
    def bits(self) -> int:
        """Bits of one number (TF32: the 19 bits the tensor cores use, held in 32)."""
        return self.sign + self.exponent + self.mantissa

    @property
    def precision(self) -> int:
        """Significant bits: the stored mantissa bits plus the implicit leading 1."""
        return self.mantissa + 1

    @property
    def eps(self) -> float:
        """The gap between 1 and the next number: 2^-stored mantissa bits (torch.finfo's eps)."""
        return 2.0**-self.mantissa

    @property
    def decimal_digits(self) -> float:
        """About how many significant decimal digits the precision holds: precision x log10 2."""
        return self.precision * math.log10(2)


def float_format(dtype: torch.dtype) -> FloatFormat:
    """The bit layout of a torch floating-point dtype, from `torch.finfo` alone: eps = 2^-m gives
    the stored mantissa bits m, and exponent = bits - 1 (sign) - m."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    info = torch.finfo(dtype)
    mantissa = round(-math.log2(info.eps))
    return FloatFormat(str(dtype).removeprefix("torch."), 1, info.bits - 1 - mantissa, mantissa)


# TF32 is not a torch dtype: a mode of NVIDIA tensor cores (compute capability 8.0+) in which
# float32 matmul inputs are rounded to 10 stored mantissa bits and keep float32's 8 exponent bits.
# Source: NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), "TF32".
TF32 = FloatFormat("tensorfloat32", sign=1, exponent=8, mantissa=10)


# ============================================================================ the estimate


@dataclass(frozen=True)
class ActivationTerm:
    """One kind of tensor the forward pass saves: `count` numbers of `dtype`, `formula` saying
    how `count` follows from the sizes (B batch, T sequence, D width, F feed-forward width,
    H heads, L layers, V vocabulary)."""

    name: str
    formula: str
    count: int
    dtype: torch.dtype

    @property
    def bytes(self) -> int:
        return self.count * _itemsize(self.dtype)


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes of the four components of a training step (an estimate or a measurement).
    `activation_terms` says where the activation bytes come from; `stored` which dtype holds
    each component."""

    weights: int
    gradients: int
    adam_moments: int
    activations: int
    stored: dict[str, str] = field(default_factory=dict)
    activation_terms: tuple[ActivationTerm, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.components().values())

    def components(self) -> dict[str, int]:
        """{"weights", "gradients", "adam_moments", "activations"} -> bytes."""
        return {name: getattr(self, name) for name in COMPONENTS}


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _config(model_or_config: object) -> GPTConfig:
    if isinstance(model_or_config, GPT):
        return model_or_config.config
    if isinstance(model_or_config, GPTConfig):
        return model_or_config
    raise TypeError(
        f"model_or_config must be a GPTConfig or a GPT, got {type(model_or_config).__name__}"
    )


def _check_autocast(autocast_dtype: torch.dtype | None) -> None:
    if autocast_dtype is not None and autocast_dtype not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast_dtype must be None (float32 throughout), torch.bfloat16 or torch.float16, "
            f"got {autocast_dtype!r}"
        )


def _sizes(
    model_or_config: object, batch_size: int, seq_len: int | None
) -> tuple[GPTConfig, int, int]:
    c = _config(model_or_config)
    if not c.fast:
        raise ValueError(
            "the estimate models the trainer's fast path (GPTConfig.fast=True); the hand-written "
            "path (fast=False) also stores each layer's (B, H, T, T) attention weights"
        )
    today = {"norm": "layer", "mlp": "plain", "qk_norm": False}
    changed = [f"{k}={getattr(c, k)!r}" for k, v in today.items() if getattr(c, k) != v]
    if c.n_kv_heads not in (None, c.n_heads):
        changed.append(f"n_kv_heads={c.n_kv_heads}")
    if changed:
        raise ValueError(
            "the activation estimate models the 2019 block (layer norm, plain MLP, all key/value "
            f"heads, no QK-norm); this config sets {', '.join(changed)}: use measure()"
        )
    b = positive_int(batch_size, "batch_size")
    t = c.block_size if seq_len is None else positive_int(seq_len, "seq_len")
    if t > c.block_size:
        raise ValueError(f"seq_len ({t}) must not exceed the model's block_size ({c.block_size})")
    return c, b, t


def activation_terms(
    model_or_config: GPTConfig | GPT,
    batch_size: int,
    seq_len: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> list[ActivationTerm]:
    """The tensors one forward pass of the course GPT saves for backward, term by term.

    Per layer (a pre-norm block): each layer norm saves its input (the float32 residual stream)
    and two statistics per position (mean and 1/std); each matmul saves its input; attention
    (`F.scaled_dot_product_attention`) saves q, k, v, its output and a log-sum-exp per query
    and head; GELU saves its input (fc1's output) and fc2 its input (GELU's output). The
    attention output is out_proj's input, stored once. In float32 the q, k and v matmuls share
    one input; autocast casts the input once per matmul, so it is stored three times, and each
    matmul weight is stored as a low-precision copy. Once: the final norm, the head's input,
    the loss's float32 log-probabilities (B, T, V), the token ids and targets (int64), and the
    positions (the learned table's indices or RoPE's rotations). With dropout > 0 each dropout
    layer (2 per block and one after the embeddings) saves a one-byte mask, as on CUDA, where
    `F.dropout` is `torch.native_dropout` (a bool mask) and attention's dropout happens inside
    the fused kernel. (The CPU keeps a mask in the activation's dtype, and its attention with
    dropout stores the (B, H, T, T) weights: not modelled, so measure with dropout 0 there.)
    """
    c, b, t = _sizes(model_or_config, batch_size, seq_len)
    _check_autocast(autocast_dtype)
    low = autocast_dtype or torch.float32
    L, D, F_, H, V = c.n_layers, c.d_model, c.d_ff, c.n_heads, c.vocab_size  # noqa: N806
    bt, norms = b * t, 2 * c.n_layers + 1
    inputs = 4 * L + 1 if autocast_dtype else norms  # q, k, v take their own casts
    terms = [
        ActivationTerm(
            "norm inputs (residual stream)", "(2L+1)·B·T·D", norms * bt * D, torch.float32
        ),
        ActivationTerm(
            "norm statistics (mean, 1/std)", "2·(2L+1)·B·T", 2 * norms * bt, torch.float32
        ),
        ActivationTerm(
            "matmul inputs (norm outputs)",
            "(4L+1)·B·T·D" if autocast_dtype else "(2L+1)·B·T·D",
            inputs * bt * D,
            low,
        ),
        ActivationTerm("attention q, k, v and output", "4L·B·T·D", 4 * L * bt * D, low),
        ActivationTerm("attention log-sum-exp", "L·B·H·T", L * bt * H, torch.float32),
        ActivationTerm("fc1 and GELU outputs", "2L·B·T·F", 2 * L * bt * F_, low),
        ActivationTerm("loss log-probabilities", "B·T·V", bt * V, torch.float32),
        ActivationTerm("token ids and targets", "2·B·T", 2 * bt, torch.int64),
    ]
    if c.position == "learned":
        terms.append(ActivationTerm("position indices", "T", t, torch.int64))
    else:
        half = D // H // 2
        terms.append(
            ActivationTerm("rotary table (complex)", "T·D/(2H)", t * half, torch.complex64)
        )
    if c.dropout > 0:
        terms.append(ActivationTerm("dropout masks", "(2L+1)·B·T·D", norms * bt * D, torch.bool))
    if autocast_dtype:
        matmuls = L * (4 * D * D + 2 * D * F_) + V * D
        terms.append(ActivationTerm("matmul weights, cast", "L·(4D²+2DF)+V·D", matmuls, low))
    return terms


def budget(
    model_or_config: GPTConfig | GPT,
    batch_size: int,
    seq_len: int | None = None,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> MemoryBudget:
    """The memory of one AdamW training step of the course GPT on batch_size x seq_len tokens
    (seq_len defaults to block_size): float32 throughout (autocast_dtype=None), or mixed
    precision (autocast_dtype=torch.bfloat16 / torch.float16: float32 weights, gradients and
    moments, activations partly in the low-precision dtype; see `activation_terms`)."""
    terms = tuple(activation_terms(model_or_config, batch_size, seq_len, autocast_dtype))
    c = _config(model_or_config)
    n = (
        count_parameters(model_or_config)
        if isinstance(model_or_config, GPT)
        else parameters_by_formula(c)
    )
    low = str(autocast_dtype or torch.float32).removeprefix("torch.")
    stored = {
        "weights": "float32" if low == "float32" else f"float32 (a {low} copy per step)",
        "gradients": "float32",
        "adam_moments": "float32 (exp_avg and exp_avg_sq)",
        "activations": "float32" if low == "float32" else f"float32 and {low}",
    }
    return MemoryBudget(
        weights=n * FLOAT32,
        gradients=n * FLOAT32,
        adam_moments=2 * n * FLOAT32,
        activations=sum(term.bytes for term in terms),
        stored=stored,
        activation_terms=terms,
    )


# ============================================================================ the measurement


class SavedTensors:
    """Counts what autograd saves for the backward pass while the context is open:
    `torch.autograd.graph.saved_tensors_hooks` sees every saved tensor; each distinct storage
    (keyed by its data pointer, so views and re-saves count once) is recorded with its bytes,
    except the storages of `exclude` (the parameters: they exist anyway)."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self.storages: dict[int, tuple[tuple[int, ...], torch.dtype, int]] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in self._excluded and key not in self.storages:
            self.storages[key] = (tuple(t.shape), t.dtype, t.untyped_storage().nbytes())
        return t  # kept as it is: the backward pass must still work

    def __enter__(self) -> SavedTensors:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    @property
    def bytes(self) -> int:
        """Total bytes of the distinct saved storages."""
        return sum(n for _, _, n in self.storages.values())

    def by_dtype(self) -> dict[str, int]:
        """Bytes per dtype name ("float32", "bfloat16", "int64", ...)."""
        out: dict[str, int] = {}
        for _, dtype, n in self.storages.values():
            name = str(dtype).removeprefix("torch.")
            out[name] = out.get(name, 0) + n
        return out


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure(
    model: nn.Module,
    ids: torch.Tensor,
    targets: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> MemoryBudget:
    """One training step of `model` (in training mode) on ids (B, T) -> targets (B, T): the
    forward pass under `SavedTensors` (and autocast when `autocast_dtype` is given), backward,
    one optimizer step (AdamW with lr 1e-3 unless `optimizer` is given); then the bytes counted
    from the tensors: the parameters, their .grad, the optimizer's exp_avg and exp_avg_sq, and
    the saved activations. The model's weights change by that one step."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    for name, t in (("ids", ids), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a (batch, seq) tensor of token ids")
    if ids.shape != targets.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must have ids' shape {tuple(ids.shape)}")
    _check_autocast(autocast_dtype)
    params = list(model.parameters())
    optimizer = optimizer or torch.optim.AdamW(params, lr=1e-3)
    was_training = model.training
    model.train()
    autocast = (
        torch.autocast(ids.device.type, dtype=autocast_dtype)
        if autocast_dtype
        else contextlib.nullcontext()
    )
    with SavedTensors(params) as saved:
        with autocast:
            logits = model(ids)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    optimizer.step()
    model.train(was_training)
    states = [optimizer.state[p] for p in params if p in optimizer.state]
    return MemoryBudget(
        weights=_tensor_bytes(params),
        gradients=_tensor_bytes(p.grad for p in params if p.grad is not None),
        adam_moments=_tensor_bytes(s[k] for s in states for k in ("exp_avg", "exp_avg_sq")),
        activations=saved.bytes,
        stored={"activations": ", ".join(f"{k} {v:,}" for k, v in saved.by_dtype().items())},
    )


# ============================================================================ reading them


def compare(estimate: MemoryBudget, measured: MemoryBudget) -> dict[str, float]:
    """measured / estimate for each component (1.0: the estimate is exact)."""
    for name, b in (("estimate", estimate), ("measured", measured)):
        if not isinstance(b, MemoryBudget):
            raise TypeError(f"{name} must be a MemoryBudget, got {type(b).__name__}")
    return {k: measured.components()[k] / v for k, v in estimate.components().items()}


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,} B"


def table(estimate: MemoryBudget, measured: MemoryBudget | None = None) -> str:
    """The components as a text table: bytes (and the dtype they are stored in) of the estimate,
    and, given a measurement, its bytes and the ratio measured / estimate."""
    head = f"{'component':14s} {'estimate':>12s}"
    head += f" {'measured':>12s} {'ratio':>6s}" if measured is not None else ""
    lines = [head + "   stored as"]
    ratios = compare(estimate, measured) if measured is not None else {}
    rows = list(estimate.components().items()) + [("total", estimate.total)]
    for name, n in rows:
        line = f"{name:14s} {_size(n):>12s}"
        if measured is not None:
            got = measured.total if name == "total" else measured.components()[name]
            line += f" {_size(got):>12s} {ratios.get(name, got / n):6.3f}"
        lines.append(line + "   " + estimate.stored.get(name, ""))
    return "\n".join(lines)
