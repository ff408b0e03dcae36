"""Attention, written out: scores, masks, softmax weights, heads.

    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    mha = MultiHeadAttention(d_model=64, n_heads=4)
    y = mha(x, mask=padding_mask(attention_mask))          # x: (batch, seq, d_model)
    gqa = MultiHeadAttention(d_model=64, n_heads=8, n_kv_heads=2)  # grouped-query attention

Shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v). A mask is boolean and broadcasts to
the scores (..., T_q, T_k): True where a query may attend, False where it may not (the same
convention as `F.scaled_dot_product_attention`'s boolean `attn_mask`). The hand-written path
returns the attention weights for inspection; `fast=True` calls
`F.scaled_dot_product_attention` (fused kernels, no weights), and the tests prove both equal.

Grouped-query attention (`n_kv_heads` < `n_heads`): the keys and values get fewer heads than the
queries, and each key/value head serves a group of n_heads / n_kv_heads query heads (multi-query
attention: one key/value head for all). `repeat_kv` shares them out by hand; the fast path
passes `enable_gqa=True` to `F.scaled_dot_product_attention`, and the tests prove both equal.
The key/value cache of generation (`KVCache`: each layer's keys and values kept, so that a new
token attends to them instead of recomputing them) shrinks by the same factor: `kv_cache_bytes`.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validate import fraction, positive_int


def _check_mask(mask: torch.Tensor | None, scores_shape: torch.Size) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a boolean tensor (True = may attend)")
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not broadcast to scores {tuple(scores_shape)}"
        ) from None


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scale, masked) v, and the weights.

    q: (..., T_q, d), k: (..., T_k, d), v: (..., T_k, d_v); scale defaults to 1/sqrt(d).
    Returns out (..., T_q, d_v) and weights (..., T_q, T_k). A query row whose mask is all
    False gets zero weights (and a zero output) instead of NaN.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share their last dimension, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length, got {k.shape[-2]} and {v.shape[-2]}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    _check_mask(mask, scores.shape)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)  # rows with nothing to attend to
    return weights @ v, weights


def causal_mask(t: int, device: torch.device | str | None = None, past: int = 0) -> torch.Tensor:
    """(t, past + t) boolean: query i, at position past + i, may attend to keys 0..past + i.
    past=0 is the lower triangle (t, t); past > 0 is a cache's view: `past` earlier keys, which
    every new query may see, then the triangle."""
    t = positive_int(t, "t")
    if isinstance(past, bool) or not isinstance(past, int) or past < 0:
        raise ValueError(f"past must be an int >= 0 (positions already cached), got {past!r}")
    return torch.ones(t, past + t, dtype=torch.bool, device=device).tril(diagonal=past)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1/0 attention mask -> (B, 1, 1, T) boolean key mask for (B, H, T, T) scores."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a tensor of 1s and 0s, got {type(attention_mask).__name__}"
        )
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be (batch, seq), got shape {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D / H): each head gets its own slice of the width."""
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, seq, width), got shape {tuple(x.shape)}")
    n_heads = positive_int(n_heads, "n_heads")
    b, t, d = x.shape
    if d % n_heads:
        raise ValueError(f"width {d} is not divisible by n_heads={n_heads}")
    return x.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)  # reshape: any strides


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_head) -> (B, T, H * d_head): the inverse of split_heads."""
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, heads, seq, head_dim), got shape {tuple(x.shape)}")
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


def repeat_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, H_kv, T, d_head) -> (B, n_heads, T, d_head): key/value head j serves the query heads
    j·g .. j·g + g - 1, g = n_heads / H_kv (the order `F.scaled_dot_product_attention` uses
    with enable_gqa=True)."""
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, heads, seq, head_dim), got shape {tuple(x.shape)}")
    n_heads = positive_int(n_heads, "n_heads")
    if n_heads % x.shape[1]:
        raise ValueError(f"n_heads={n_heads} is not a multiple of the {x.shape[1]} key/value heads")
    return x.repeat_interleave(n_heads // x.shape[1], dim=1)


class LayerCache:
    """One layer's cache: keys and values (batch, n_kv_heads, capacity, head_dim), preallocated,
    of which the first `length` positions are filled."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys, self.values, self.length = keys, values, 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the T new positions' k, v (B, H_kv, T, d_head) after the filled ones; return
        all keys and values so far, (B, H_kv, length + T, d_head) each (views, not copies)."""
        end = self.length + k.shape[-2]
        want = (*self.keys.shape[:2], k.shape[-2], self.keys.shape[-1])
        if k.shape != want or v.shape != want:
            raise ValueError(
                f"k and v must be {want} for this cache, got {tuple(k.shape)} and {tuple(v.shape)}"
            )
        if end > self.keys.shape[2]:
            raise ValueError(
                f"the cache holds {self.keys.shape[2]} positions: {self.length} are filled, "
                f"{k.shape[-2]} more do not fit (crop the sequence and start a new cache)"
            )
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """The key/value cache of generation: every layer's keys and values of the positions seen so
    far, so that a new token costs one position's work instead of the whole prefix's.

    KVCache(n_layers, batch, n_kv_heads, head_dim, capacity): `layers[i]` is layer i's
    `LayerCache`; `length` positions are filled (a forward pass of T new tokens fills T more in
    every layer). Its size is `kv_cache_bytes` of the same numbers; `nbytes()` measures it.
    """

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        sizes = {"n_layers": n_layers, "batch": batch, "n_kv_heads": n_kv_heads}
        sizes.update(head_dim=head_dim, capacity=capacity)
        n_layers, *shape = (positive_int(value, name) for name, value in sizes.items())
        shape[2], shape[3] = shape[3], shape[2]  # (batch, n_kv_heads, capacity, head_dim)

        def empty() -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        self.layers = [LayerCache(empty(), empty()) for _ in range(n_layers)]
        self.capacity = shape[2]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every position (the buffers stay allocated)."""
        self.crop(0)

    def crop(self, length: int) -> None:
        """Keep the first `length` positions and forget the rest (speculative decoding cuts back
        to the tokens it kept)."""
        if (
            isinstance(length, bool)
            or not isinstance(length, int)
            or not 0 <= length <= self.length
        ):
            raise ValueError(f"length must be an int in [0, {self.length}], got {length!r}")
        for layer in self.layers:
            layer.length = length

    def nbytes(self) -> int:
        """Bytes of the buffers, measured from their storage."""
        tensors = [t for layer in self.layers for t in (layer.keys, layer.values)]
        return sum(t.untyped_storage().nbytes() for t in tensors)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q, k, v and output projections.

    d_model: width; n_heads: heads (must divide d_model). forward(x, kv=None, mask=None):
    x (B, T_q, d_model) gives the queries; kv (B, T_k, d_model) the keys and values (default:
    x itself, self-attention; pass the encoder's output for cross-attention). mask broadcasts
    to (B, H, T_q, T_k). fast=True uses F.scaled_dot_product_attention.

    n_kv_heads (default n_heads) must divide n_heads: k_proj and v_proj then map D to
    n_kv_heads · d_head, and each key/value head serves n_heads / n_kv_heads query heads
    (grouped-query attention; n_kv_heads=1 is multi-query attention). With the default the
    module is exactly the multi-head attention it always was, parameter for parameter.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        bias: bool = True,
        dropout: float = 0.0,
        fast: bool = False,
        n_kv_heads: int | None = None,
    ):
        super().__init__()
        d_model, n_heads = positive_int(d_model, "d_model"), positive_int(n_heads, "n_heads")
        n_kv_heads = n_heads if n_kv_heads is None else positive_int(n_kv_heads, "n_kv_heads")
        dropout = fraction(dropout, "dropout")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads}: each key/value head "
                "serves a whole group of query heads"
            )
        self.d_model, self.n_heads, self.fast = d_model, n_heads, fast
        self.n_kv_heads, self.head_dim = n_kv_heads, d_model // n_heads
        kv_width = n_kv_heads * self.head_dim  # d_model unless grouped
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, kv_width, bias=bias)
        self.v_proj = nn.Linear(d_model, kv_width, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.last_weights: torch.Tensor | None = None  # (B, H, T_q, T_k) of the last slow call
        # rotary: None, or a function (B, H, T, d_head) -> same shape applied to queries and keys
        # of self-attention (RoPE: `course_lib.embeddings.rope_rotate`, set by the GPT)
        self.rotary = None
        # q_norm, k_norm: None, or modules normalising each head's queries and keys over d_head
        # before the rotation (QK-norm: an RMS norm of width d_head, set by the GPT's block)
        self.q_norm: nn.Module | None = None
        self.k_norm: nn.Module | None = None

    def _check_input(self, x: object, name: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{name} must be (batch, seq, {self.d_model}), got shape {tuple(x.shape)}"
            )

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: LayerCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """is_causal=True (self-attention only) adds the causal mask to `mask`; on the fast path
        without another mask it lets the fused kernel skip the masked half instead of reading
        a (T, T) mask. cache (self-attention only): x holds the T newest positions; their keys
        and values join the cache's, which they attend to (mask then covers all length + T
        keys). positions ((T,) or (B, T) ints) go to the rotary function; with a cache they
        default to length .. length + T - 1."""
        if (is_causal or cache is not None) and kv is not None:
            raise ValueError(
                "is_causal=True applies to self-attention, as does a cache: pass kv=None"
            )
        self._check_input(x, "x")
        if kv is not None:
            self._check_input(kv, "kv")
            if kv.shape[0] != x.shape[0]:
                raise ValueError(f"kv has batch {kv.shape[0]}, x has {x.shape[0]}")
        kv = x if kv is None else kv
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, T_q, d_head)
        k = split_heads(self.k_proj(kv), self.n_kv_heads)  # (B, H_kv, T_k, d_head)
        v = split_heads(self.v_proj(kv), self.n_kv_heads)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        past = 0 if cache is None else cache.length
        if positions is None and past:
            positions = torch.arange(past, past + x.shape[1], device=x.device)
        if self.rotary is not None:
            if kv is not x:
                raise ValueError("rotary position embeddings apply to self-attention only")
            rotate = self.rotary if positions is None else partial(self.rotary, positions=positions)
            q, k = rotate(q), rotate(k)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, past + T, d_head)
        p = self.dropout if self.training else 0.0
        if is_causal and (past or not (self.fast and mask is None)):
            # one new query sees every cached key: no mask needed
            c = causal_mask(x.shape[1], x.device, past) if x.shape[1] > 1 else None
            mask = c if mask is None else mask if c is None else mask & c
            is_causal = False
        grouped = self.n_kv_heads != self.n_heads
        if self.fast:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal, enable_gqa=grouped
            )
        else:
            if grouped:  # (B, H_kv, T_k, d_head) -> (B, H, T_k, d_head)
                k, v = repeat_kv(k, self.n_heads), repeat_kv(v, self.n_heads)
            out, weights = scaled_dot_product_attention(q, k, v, mask)
            self.last_weights = weights.detach()
            if p:  # dropout on the attention weights, as F.scaled_dot_product_attention does
                out = F.dropout(weights, p) @ v
        return self.out_proj(merge_heads(out))


def score_bytes(
    batch: int, heads: int, t_q: int, t_k: int, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes of one (batch, heads, t_q, t_k) score tensor: what attention stores per layer.

    The hand-written path keeps several such tensors alive at once (q k^T, the scaled scores,
    the softmax weights); fused kernels (`F.scaled_dot_product_attention`) avoid most of them.
    """
    batch, heads = positive_int(batch, "batch"), positive_int(heads, "heads")
    t_q, t_k = positive_int(t_q, "t_q"), positive_int(t_k, "t_k")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return batch * heads * t_q * t_k * torch.empty((), dtype=dtype).element_size()


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    dtype: torch.dtype = torch.bfloat16,
) -> int:
    """Bytes of the key/value cache a decoder keeps while it generates: for every layer, a key
    and a value tensor (batch, n_kv_heads, seq_len, head_dim) each, so
    2 · n_layers · batch · n_kv_heads · seq_len · head_dim · bytes per number. Grouped-query
    attention divides it by n_heads / n_kv_heads; the queries are never cached. dtype: the
    cache's number format (default bfloat16, 2 bytes, as models are usually served)."""
    sizes = {"n_layers": n_layers, "n_kv_heads": n_kv_heads, "head_dim": head_dim}
    sizes.update(seq_len=seq_len, batch=batch)
    n = 2
    for name, value in sizes.items():
        n *= positive_int(value, name)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return n * torch.empty((), dtype=dtype).element_size()


def to_torch_multihead(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """An `nn.MultiheadAttention` (batch_first=True) holding a copy of `mha`'s weights.

    PyTorch stacks the three input projections into one `in_proj_weight` (3 * d_model,
    d_model), rows in the order q, k, v, and its boolean masks mean the opposite of ours
    (True = may NOT attend): pass `~mask` (or `key_padding_mask=~attention_mask.bool()`).
    The two modules then agree, forward and backward, with dropout off.
    """
    if not isinstance(mha, MultiHeadAttention):
        raise TypeError(f"mha must be a MultiHeadAttention, got {type(mha).__name__}")
    if mha.n_kv_heads != mha.n_heads or mha.q_norm is not None:
        raise ValueError(
            "nn.MultiheadAttention has neither grouped key/value heads nor QK-norm: mha must have "
            f"n_kv_heads == n_heads and no q_norm (got n_kv_heads={mha.n_kv_heads} of "
            f"{mha.n_heads} heads, q_norm {'set' if mha.q_norm is not None else 'None'})"
        )
    bias = mha.q_proj.bias is not None
    ref = nn.MultiheadAttention(
        mha.d_model, mha.n_heads, dropout=mha.dropout, bias=bias, batch_first=True
    )
    ref = ref.to(dtype=mha.q_proj.weight.dtype, device=mha.q_proj.weight.device)
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight])
        )
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
            ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref
