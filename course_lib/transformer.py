"""The Transformer, assembled: encoder and decoder blocks, GPT and the 2017 encoder-decoder.

    block = EncoderBlock(d_model=64, n_heads=4, d_ff=256)          # x: (batch, seq, 64)
    gpt = GPT(GPTConfig(vocab_size=100, block_size=32, d_model=64, n_heads=4, n_layers=2))
    logits = gpt(ids)                                               # (batch, seq, vocab)

Every block is built on `course_lib.attention.MultiHeadAttention` (the one home for attention).
Masks are boolean, True = may attend, and broadcast to the scores (batch, heads, T_q, T_k).
Shapes: B batch, T sequence length, D = d_model, V vocabulary size.

- The parts: norms (`course_lib.norms`: `LayerNorm`, `RMSNorm`) and feed-forward layers
  (`course_lib.feedforward`: `FeedForward`, `GatedFeedForward`), re-exported here.
- `EncoderBlock`: self-attention + feed-forward, each with a residual; pre-norm
  (`norm_first=True`, GPT-2 and most modern models) or post-norm (the 2017 paper, BERT).
- `DecoderBlock`: masked (causal) self-attention, cross-attention to the encoder's output
  ("memory"), feed-forward; with `cross_attention=False`, a GPT block, in the 2019 design
  (layer norm, GELU MLP, multi-head attention) or today's (`norm="rms"`, `mlp="gated"` with
  `activation="silu"`: SwiGLU, `qk_norm=True`, grouped-query `n_kv_heads`).
- `block_from_torch`: PyTorch's encoder or decoder layer as our block, with the same weights.
- `GPT` (decoder-only) and `EncoderDecoder` (the 2017 Transformer), each with its own frozen
  config dataclass; `parameters_by_formula(config)` counts their parameters by hand and the
  tests hold it equal to `count_parameters(model)`.
- `check_config`, `check_ids`, `key_mask`: the checks every model's config and inputs pass.

BERT (encoder-only) is `course_lib.bert`, built from these blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import KVCache, LayerCache, MultiHeadAttention

# ACTIVATIONS and layer_norm are re-exported (T.ACTIVATIONS, T.layer_norm, as before the split)
from course_lib.feedforward import ACTIVATIONS as ACTIVATIONS
from course_lib.feedforward import (
    MLPS,
    FeedForward,
    GatedFeedForward,
    check_activation,
    feed_forward_parameters,
    make_feed_forward,
)
from course_lib.norms import NORMS, LayerNorm, RMSNorm, make_norm, norm_parameters
from course_lib.norms import layer_norm as layer_norm
from course_lib.positions import rope_rotate
from course_lib.validate import fraction, positive_int


def _check_common(
    d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str
) -> tuple[int, int, int, float]:
    """The shared sizes, checked: (d_model, n_heads, d_ff) as ints, dropout as a float."""
    d_model, n_heads = positive_int(d_model, "d_model"), positive_int(n_heads, "n_heads")
    d_ff, dropout = positive_int(d_ff, "d_ff"), fraction(dropout, "dropout")
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    check_activation(activation)
    return d_model, n_heads, d_ff, dropout


def check_config(config: object, int_fields: tuple[str, ...]) -> None:
    """Check a frozen config's sizes in __post_init__ and store them as int / float."""
    checked = {name: positive_int(getattr(config, name), name) for name in int_fields}
    common = ("d_model", "n_heads", "d_ff", "dropout")
    values = _check_common(*(getattr(config, n) for n in common), config.activation)
    checked.update(zip(common, values, strict=True))
    for name, value in checked.items():
        object.__setattr__(config, name, value)  # e.g. a NumPy int64 becomes an int


def _check_width(x: torch.Tensor, d_model: int, name: str = "x") -> None:
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must be (batch, seq, {d_model}), got shape {tuple(x.shape)}")


# ====================================================================== blocks


class EncoderBlock(nn.Module):
    """Self-attention and feed-forward, each wrapped in a residual and a layer norm.

    norm_first=True (pre-norm):  x = x + attn(norm1(x));  x = x + ffn(norm2(x))
    norm_first=False (post-norm): x = norm1(x + attn(x));  x = norm2(x + ffn(x))
    forward(x (B, T, D), mask broadcasting to (B, H, T, T) or None) -> (B, T, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        norm_first: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        d_model, n_heads, d_ff, dropout = _check_common(d_model, n_heads, d_ff, dropout, activation)
        self.d_model, self.norm_first = d_model, norm_first
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.norm1 = LayerNorm(d_model, eps)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.norm2 = LayerNorm(d_model, eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_width(x, self.d_model)
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), mask=mask))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, mask=mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention to the encoder's output, feed-forward.

    forward(x (B, T, D), memory (B, S, D) or None, mask=None, memory_mask=None, causal=True):
    self-attention sees positions 0..t only when causal (the causal mask is combined with
    `mask`, e.g. a (B, 1, 1, T) padding mask); cross-attention sees the memory where
    memory_mask (broadcasting to (B, H, T, S)) is True. Returns (B, T, D).

    cross_attention=False builds no middle sub-layer: a GPT block, which takes no memory (its
    norms keep the names norm1 and norm3, as GPT checkpoints hold them). fast=True: attention by
    `F.scaled_dot_product_attention`, norms by `F.layer_norm` (same parameters, same function);
    rope=True rotates self-attention's queries and keys by position (`embeddings.rope_rotate`).
    Today's block: norm="rms" (`RMSNorm`), mlp="gated" (`GatedFeedForward`, with `activation`
    as its gate's: "silu" makes SwiGLU), qk_norm=True (an RMS norm of width d_head on each
    head's self-attention queries and keys, before the rotation), n_kv_heads (grouped-query
    self-attention; cross-attention keeps all heads). The defaults build the 2019 block.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        norm_first: bool = True,
        eps: float = 1e-5,
        cross_attention: bool = True,
        bias: bool = True,
        fast: bool = False,
        rope: bool = False,
        norm: str = "layer",
        mlp: str = "plain",
        qk_norm: bool = False,
        n_kv_heads: int | None = None,
    ):
        super().__init__()
        d_model, n_heads, d_ff, dropout = _check_common(d_model, n_heads, d_ff, dropout, activation)
        self.d_model, self.norm_first = d_model, norm_first

        def attention(kv_heads: int | None = None) -> MultiHeadAttention:
            return MultiHeadAttention(
                d_model, n_heads, bias=bias, dropout=dropout, fast=fast, n_kv_heads=kv_heads
            )

        def make() -> LayerNorm | RMSNorm:
            return make_norm(norm, d_model, eps, fused=fast, bias=bias)

        self.self_attn, self.norm1 = attention(n_kv_heads), make()
        # MultiHeadAttention takes no rotary argument and no QK-norm (it imports no norm): its
        # attributes are set here, at construction
        self.self_attn.rotary = rope_rotate if rope else None
        if qk_norm:
            head_dim = d_model // n_heads
            self.self_attn.q_norm = RMSNorm(head_dim, eps, fused=fast)
            self.self_attn.k_norm = RMSNorm(head_dim, eps, fused=fast)
        self.cross_attn, self.norm2 = (attention(), make()) if cross_attention else (None, None)
        self.ffn = make_feed_forward(mlp, d_model, d_ff, activation, dropout, bias=bias)
        self.norm3 = make()
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        causal: bool = True,
        cache: LayerCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """cache and positions go to self-attention (`MultiHeadAttention.forward`)."""
        _check_width(x, self.d_model)
        if self.cross_attn is not None and memory is None:
            raise ValueError("this block cross-attends: pass memory, the encoder's (B, S, D)")
        if self.cross_attn is None and memory is not None:
            raise ValueError("this block has no cross-attention (a GPT block): memory must be None")
        if memory is not None:
            _check_width(memory, self.d_model, "memory")
            if memory.shape[0] != x.shape[0]:
                raise ValueError(f"memory has batch {memory.shape[0]}, x has {x.shape[0]}")
        options = dict(mask=mask, is_causal=causal, cache=cache, positions=positions)
        steps = [(self.norm1, lambda h: self.self_attn(h, **options))]
        if self.cross_attn is not None:
            steps.append((self.norm2, lambda h: self.cross_attn(h, kv=memory, mask=memory_mask)))
        steps.append((self.norm3, self.ffn))
        for norm, sublayer in steps:
            if self.norm_first:
                x = x + self.drop(sublayer(norm(x)))
            else:
                x = norm(x + self.drop(sublayer(x)))
        return x


def _torch_activation(layer: nn.Module) -> str:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or isinstance(act, nn.GELU):
        return "gelu"
    raise ValueError(f"unsupported activation {act!r} in {type(layer).__name__}")


def _copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    d = theirs.embed_dim
    w, b = theirs.in_proj_weight, theirs.in_proj_bias  # q, k, v stacked: (3D, D), (3D,)
    for k, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
        proj.weight.copy_(w[k * d : (k + 1) * d])
        proj.bias.copy_(b[k * d : (k + 1) * d])
    ours.out_proj.weight.copy_(theirs.out_proj.weight)
    ours.out_proj.bias.copy_(theirs.out_proj.bias)


def block_from_torch(
    layer: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer,
) -> EncoderBlock | DecoderBlock:
    """Our block with the weights (and norm_first, activation, eps, dropout) of a PyTorch layer.

    An `nn.TransformerEncoderLayer` gives an EncoderBlock; an `nn.TransformerDecoderLayer` gives
    a DecoderBlock, whose cross_attn takes the layer's `multihead_attn`. batch_first layers only.
    """
    cross = isinstance(layer, nn.TransformerDecoderLayer)
    if not cross and not isinstance(layer, nn.TransformerEncoderLayer):
        raise TypeError(
            "layer must be nn.TransformerEncoderLayer or nn.TransformerDecoderLayer, got "
            f"{type(layer).__name__}"
        )
    if not layer.self_attn.batch_first:
        raise ValueError("layer must be built with batch_first=True (the course's layout)")
    sizes = (layer.self_attn.embed_dim, layer.self_attn.num_heads, layer.linear1.out_features)
    options = {
        "dropout": layer.dropout.p,
        "activation": _torch_activation(layer),
        "norm_first": layer.norm_first,
        "eps": layer.norm1.eps,
    }
    block = DecoderBlock(*sizes, **options) if cross else EncoderBlock(*sizes, **options)
    with torch.no_grad():
        _copy_mha(block.self_attn if cross else block.attn, layer.self_attn)
        if cross:
            _copy_mha(block.cross_attn, layer.multihead_attn)
        block.ffn.fc1.load_state_dict(layer.linear1.state_dict())
        block.ffn.fc2.load_state_dict(layer.linear2.state_dict())
        for name in ("norm1", "norm2", "norm3") if cross else ("norm1", "norm2"):
            getattr(block, name).load_state_dict(getattr(layer, name).state_dict())
    return block


def check_ids(ids: torch.Tensor, vocab_size: int, max_len: int, name: str = "ids") -> None:
    """ids: an integer (B, T) tensor with 1 <= T <= max_len, every id in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise TypeError(f"{name} must be an integer tensor of token ids (batch, seq)")
    if ids.dim() != 2:
        raise ValueError(f"{name} must be (batch, seq), got shape {tuple(ids.shape)}")
    if ids.shape[1] == 0:  # nothing to attend to, no position to predict from
        raise ValueError(f"{name} must hold at least one position, got shape {tuple(ids.shape)}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions, the model holds at most {max_len}")
    # the range check reads the ids back to the host: skipped on CUDA (where an id out of range
    # stops the kernel with a device-side assertion instead) and inside torch.compile
    on_host = ids.device.type != "cuda" and not torch.compiler.is_compiling()
    if on_host and ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got {ids.min()}..{ids.max()}")


def key_mask(
    attention_mask: torch.Tensor | None, ids: torch.Tensor, past: int = 0
) -> torch.Tensor | None:
    """(B, past + T) 1/0 -> (B, 1, 1, past + T) bool key mask, True = a real token; checked
    against ids' shape (B, T) and the `past` cached positions. None stays None: all are real."""
    if attention_mask is None:
        return None
    want = (ids.shape[0], past + ids.shape[1])
    if tuple(attention_mask.shape) != want:
        cached = f" (with {past} cached positions)" if past else ""
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} must be {want}, the ids' "
            f"{tuple(ids.shape)}{cached}"
        )
    return attention_mask.bool()[:, None, None, :]


# ====================================================================== GPT (decoder-only)


@dataclass(frozen=True)
class GPTConfig:
    """A decoder-only language model: V tokens, contexts of up to block_size positions."""

    vocab_size: int
    block_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    dropout: float = 0.0
    activation: str = "gelu"
    tie_weights: bool = True  # the output layer reuses the token embedding matrix
    # fast=True: F.scaled_dot_product_attention (causal kernels) and F.layer_norm, the same
    # parameters and the same function as the hand-written path (tests hold them equal)
    fast: bool = False
    # init_std=None keeps PyTorch's default initialisation (an nn.Embedding starts at std 1, so
    # a tied output layer starts with ~8-nat losses); a number such as 0.02 is GPT-2's scheme:
    # weights N(0, init_std), biases 0, residual output projections N(0, init_std/sqrt(2L))
    init_std: float | None = None
    bias: bool = True  # False: no biases in linear layers or layer norms (as nanoGPT's default)
    # "learned": a table of block_size position vectors added to the token embeddings (GPT-2);
    # "rope": no table, queries and keys rotated by position in every layer (RoFormer, Llama)
    position: str = "learned"
    # today's block (the defaults keep the 2019 one, and every checkpoint written before):
    # "layer" norm (GPT-2) or "rms" norm (Llama); a "plain" MLP fc2(act(fc1 x)) or a "gated" one
    # down(act(gate x) * up x) ("gated" with activation="silu" is Llama's SwiGLU); qk_norm: an
    # RMS norm on each head's queries and keys (OLMo 2, Qwen3); n_kv_heads: key/value heads for
    # grouped-query attention (None: n_heads; 1: multi-query)
    norm: str = "layer"
    mlp: str = "plain"
    qk_norm: bool = False
    n_kv_heads: int | None = None

    def __post_init__(self):
        check_config(self, ("vocab_size", "block_size", "n_layers"))
        for name, choices in (("norm", NORMS), ("mlp", MLPS)):
            value = getattr(self, name)
            if not isinstance(value, str):
                kind = type(value).__name__
                raise TypeError(f"{name} must be a str, one of {list(choices)}, got {kind}")
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        if not isinstance(self.qk_norm, bool):
            raise TypeError(f"qk_norm must be True or False, got {type(self.qk_norm).__name__}")
        if self.n_kv_heads is not None:
            kv = positive_int(self.n_kv_heads, "n_kv_heads")
            if self.n_heads % kv:
                raise ValueError(
                    f"n_kv_heads={kv} must divide n_heads={self.n_heads}: each key/value head "
                    "serves a whole group of query heads"
                )
            object.__setattr__(self, "n_kv_heads", kv)
        std = self.init_std
        if std is not None and (isinstance(std, bool) or not isinstance(std, int | float)):
            kind = type(std).__name__
            raise TypeError(f"init_std must be a positive number or None, got {kind} {std!r}")
        if std is not None and not std > 0:
            raise ValueError(f"init_std must be a positive number, got {std!r}")
        if self.position not in ("learned", "rope"):
            raise ValueError(f"position must be 'learned' or 'rope', got {self.position!r}")
        if self.position == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"position='rope' rotates pairs of dimensions: the head width "
                f"{self.d_model // self.n_heads} must be even"
            )


class GPT(nn.Module):
    """Token embeddings (plus a learned position table, or RoPE inside attention), n_layers
    pre-norm causal blocks, a final norm, a linear layer to the vocabulary.

    forward(ids (B, T), attention_mask (B, T) or None) -> logits (B, T, V): row t scores the
    token that follows ids[:, t]. The config's options (fast, position, bias, norm, mlp,
    qk_norm, n_kv_heads) go to the constructors of the layers built here."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model) if c.position == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        sizes = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation)
        options = dict(cross_attention=False, bias=c.bias, fast=c.fast, rope=c.position == "rope")
        options.update(norm=c.norm, mlp=c.mlp, qk_norm=c.qk_norm, n_kv_heads=c.n_kv_heads)
        self.blocks = nn.ModuleList(DecoderBlock(*sizes, **options) for _ in range(c.n_layers))
        self.norm = make_norm(c.norm, c.d_model, fused=c.fast, bias=c.bias)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights:
            self.head.weight = self.tok_emb.weight
        if c.init_std is not None:
            self._init_gpt2(c.init_std)

    @torch.no_grad()
    def _init_gpt2(self, std: float) -> None:
        """GPT-2's initialisation: N(0, std) weights, zero biases, and the two projections that
        write into the residual stream scaled by 1/sqrt(2 * n_layers), so the stream's variance
        does not grow with depth."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            ffn = block.ffn
            out = ffn.down_proj if isinstance(ffn, GatedFeedForward) else ffn.fc2
            for w in (block.self_attn.out_proj.weight, out.weight):
                nn.init.normal_(w, 0.0, std / (2 * self.config.n_layers) ** 0.5)

    def new_cache(self, batch: int = 1, capacity: int | None = None) -> KVCache:
        """An empty key/value cache for `batch` sequences of up to `capacity` positions (default
        the context, block_size), in the weights' dtype and device."""
        c, w = self.config, self.tok_emb.weight
        kv_heads, capacity = c.n_kv_heads or c.n_heads, capacity or c.block_size
        sizes = (c.n_layers, batch, kv_heads, c.d_model // c.n_heads, capacity)
        return KVCache(*sizes, dtype=w.dtype, device=w.device)

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """With a cache (`new_cache`), ids (B, T) are the T positions after its `length` (they
        join it; attention_mask is then (B, length + T)). positions: (T,) or (B, T) ints, default
        length .. length + T - 1 (a left-padded batch passes each row's own, from 0)."""
        past = 0 if cache is None else cache.length
        name = f"ids after {past} cached positions" if past else "ids"
        check_ids(ids, self.config.vocab_size, self.config.block_size - past, name)
        x = self.tok_emb(ids)  # (B, T, D)
        given = positions is not None
        if positions is None:
            positions = torch.arange(past, past + ids.shape[1], device=ids.device)
        rope_positions = positions if given or past else None  # None: 0 .. T-1, the fast form
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        mask = key_mask(attention_mask, ids, past)
        layers = cache.layers if cache else [None] * len(self.blocks)
        for block, layer in zip(self.blocks, layers, strict=True):
            x = block(x, mask=mask, cache=layer, positions=rope_positions)
        return self.head(self.norm(x))  # (B, T, V)


# ====================================================================== encoder-decoder


@dataclass(frozen=True)
class EncoderDecoderConfig:
    """The 2017 Transformer: an encoder over the source, a decoder over the target so far."""

    src_vocab_size: int
    tgt_vocab_size: int
    max_len: int
    d_model: int
    n_heads: int
    n_encoder_layers: int
    n_decoder_layers: int
    d_ff: int
    dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = True

    def __post_init__(self):
        check_config(
            self,
            ("src_vocab_size", "tgt_vocab_size", "max_len", "n_encoder_layers", "n_decoder_layers"),
        )


def shift_right(targets: torch.Tensor, start_id: int) -> torch.Tensor:
    """The decoder's input for teacher forcing: (B, T) targets -> (B, T) [start, t_0..t_{T-2}].

    At position t the decoder sees the targets before t and must predict targets[:, t]; fed
    the targets themselves (unshifted) it could copy the answer.
    """
    if targets.dim() != 2:
        raise ValueError(f"targets must be (batch, seq), got shape {tuple(targets.shape)}")
    start = torch.full_like(targets[:, :1], start_id)
    return torch.cat([start, targets[:, :-1]], dim=1)


class EncoderDecoder(nn.Module):
    """encode(src (B, S), src_mask) -> memory (B, S, D): one vector per source position.
    decode(tgt_in (B, T), memory, src_mask, tgt_mask) -> logits (B, T, V_tgt), causal.
    forward(src, tgt_in, ...) does both. tgt_in is `shift_right(targets, start_id)`."""

    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        if not isinstance(config, EncoderDecoderConfig):
            raise TypeError(f"config must be an EncoderDecoderConfig, got {type(config).__name__}")
        c = self.config = config
        self.src_emb = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_emb = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.src_pos = nn.Embedding(c.max_len, c.d_model)
        self.tgt_pos = nn.Embedding(c.max_len, c.d_model)
        args = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, c.norm_first)
        self.encoder = nn.ModuleList(EncoderBlock(*args) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderBlock(*args) for _ in range(c.n_decoder_layers))
        # pre-norm stacks end in a layer norm (their residual stream is never normalised)
        self.enc_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.dec_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        check_ids(src, c.src_vocab_size, c.max_len, "src")
        pos = torch.arange(src.shape[1], device=src.device)
        x = self.src_emb(src) + self.src_pos(pos)
        mask = key_mask(src_mask, src)
        for block in self.encoder:
            x = block(x, mask=mask)
        return self.enc_norm(x)

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.config
        check_ids(tgt_in, c.tgt_vocab_size, c.max_len, "tgt_in")
        pos = torch.arange(tgt_in.shape[1], device=tgt_in.device)
        x = self.tgt_emb(tgt_in) + self.tgt_pos(pos)
        memory_mask = None if src_mask is None else src_mask.bool()[:, None, None, :]
        mask = key_mask(tgt_mask, tgt_in)
        for block in self.decoder:
            x = block(x, memory, mask=mask, memory_mask=memory_mask, causal=True)
        return self.head(self.dec_norm(x))

    def forward(
        self,
        src: torch.Tensor,
        tgt_in: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask, tgt_mask)


# ====================================================================== parameter counts


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())


def attention_parameters(
    d_model: int,
    *,
    n_heads: int = 1,
    n_kv_heads: int | None = None,
    bias: bool = True,
    qk_norm: bool = False,
) -> int:
    """q and output projections: a (D, D) weight and a (D,) bias each; k and v: a (D_kv, D)
    weight and a (D_kv,) bias each, D_kv = n_kv_heads * D / n_heads (D unless grouped); with
    qk_norm, two RMS norms of width D / n_heads. Without biases, the weights alone."""
    kv = d_model if n_kv_heads is None else n_kv_heads * (d_model // n_heads)
    weights = 2 * d_model * d_model + 2 * kv * d_model
    norms = 2 * (d_model // n_heads) if qk_norm else 0
    return weights + (2 * d_model + 2 * kv if bias else 0) + norms


def parameters_by_formula(config: GPTConfig | EncoderDecoderConfig) -> int:
    """The parameter count of the model a config describes, from its sizes alone (for a
    BertConfig, `course_lib.bert.parameters_by_formula`)."""
    if not isinstance(config, GPTConfig | EncoderDecoderConfig):
        raise TypeError(
            "config must be a GPTConfig or an EncoderDecoderConfig (a BertConfig: "
            f"course_lib.bert.parameters_by_formula), got {type(config).__name__}"
        )
    d = config.d_model
    if isinstance(config, GPTConfig):  # self-attention, feed-forward, two norms: no cross-attn
        c = config
        ln = norm_parameters(c.norm, d, c.bias)
        attention = attention_parameters(
            d, n_heads=c.n_heads, n_kv_heads=c.n_kv_heads, bias=c.bias, qk_norm=c.qk_norm
        )
        block = attention + feed_forward_parameters(d, c.d_ff, c.mlp, c.bias) + 2 * ln
        head = 0 if c.tie_weights else c.vocab_size * d
        positions = c.block_size * d if c.position == "learned" else 0
        return c.vocab_size * d + positions + c.n_layers * block + ln + head
    ln = 2 * d  # a layer norm: scale and shift
    enc_block = attention_parameters(d) + feed_forward_parameters(d, config.d_ff) + 2 * ln
    dec_block = enc_block + attention_parameters(d) + ln  # plus cross-attention and its norm
    embeddings = (config.src_vocab_size + config.tgt_vocab_size + 2 * config.max_len) * d
    final_norms = 2 * ln if config.norm_first else 0
    head = d * config.tgt_vocab_size + config.tgt_vocab_size
    blocks = config.n_encoder_layers * enc_block + config.n_decoder_layers * dec_block
    return embeddings + blocks + final_norms + head
