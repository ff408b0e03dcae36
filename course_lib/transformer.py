"""The Transformer, assembled: layer norm, feed-forward, encoder and decoder blocks, GPT and the
2017 encoder-decoder.

    block = EncoderBlock(d_model=64, n_heads=4, d_ff=256)          # x: (batch, seq, 64)
    gpt = GPT(GPTConfig(vocab_size=100, block_size=32, d_model=64, n_heads=4, n_layers=2))
    logits = gpt(ids)                                               # (batch, seq, vocab)

Every block is built on `course_lib.attention.MultiHeadAttention` (the one home for attention).
Masks are boolean, True = may attend, and broadcast to the scores (batch, heads, T_q, T_k).
Shapes: B batch, T sequence length, D = d_model, V vocabulary size.

- `layer_norm` / `LayerNorm`: by hand, equal to `nn.LayerNorm` (tests).
- `EncoderBlock`: self-attention + feed-forward, each with a residual; pre-norm
  (`norm_first=True`, GPT-2 and most modern models) or post-norm (the 2017 paper, BERT).
- `DecoderBlock`: masked (causal) self-attention, cross-attention to the encoder's output
  ("memory"), feed-forward; with `cross_attention=False`, a GPT block.
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

from course_lib.attention import MultiHeadAttention
from course_lib.embeddings import rope_rotate
from course_lib.validate import fraction, positive_int

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # the exact (erf) GELU, as BERT and nn.TransformerEncoderLayer use
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's approximation
}


def _check_common(
    d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str
) -> tuple[int, int, int, float]:
    """The shared sizes, checked: (d_model, n_heads, d_ff) as ints, dropout as a float."""
    d_model, n_heads = positive_int(d_model, "d_model"), positive_int(n_heads, "n_heads")
    d_ff, dropout = positive_int(d_ff, "d_ff"), fraction(dropout, "dropout")
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
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


# ====================================================================== layer norm, feed-forward


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
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(
            f"weight must have shape ({x.shape[-1]},) to match x's last dimension, "
            f"got {tuple(weight.shape)}"
        )
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


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
        d_model, _, d_ff, dropout = _check_common(d_model, 1, d_ff, dropout, activation)
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


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
    ):
        super().__init__()
        d_model, n_heads, d_ff, dropout = _check_common(d_model, n_heads, d_ff, dropout, activation)
        self.d_model, self.norm_first = d_model, norm_first

        def attention() -> MultiHeadAttention:
            return MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout, fast=fast)

        def norm() -> LayerNorm:
            return LayerNorm(d_model, eps, fused=fast, bias=bias)

        self.self_attn, self.norm1 = attention(), norm()
        # MultiHeadAttention takes no rotary argument: its attribute is set here, at construction
        self.self_attn.rotary = rope_rotate if rope else None
        self.cross_attn, self.norm2 = (attention(), norm()) if cross_attention else (None, None)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout, bias=bias)
        self.norm3 = norm()
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        causal: bool = True,
    ) -> torch.Tensor:
        _check_width(x, self.d_model)
        if self.cross_attn is not None and memory is None:
            raise ValueError("this block cross-attends: pass memory, the encoder's (B, S, D)")
        if self.cross_attn is None and memory is not None:
            raise ValueError("this block has no cross-attention (a GPT block): memory must be None")
        if memory is not None:
            _check_width(memory, self.d_model, "memory")
            if memory.shape[0] != x.shape[0]:
                raise ValueError(f"memory has batch {memory.shape[0]}, x has {x.shape[0]}")
        steps = [(self.norm1, lambda h: self.self_attn(h, mask=mask, is_causal=causal))]
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


def key_mask(attention_mask: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor | None:
    """(B, T) 1/0 -> (B, 1, 1, T) bool key mask, True = a real token; checked against ids'
    shape. None stays None: every position is real."""
    if attention_mask is None:
        return None
    if attention_mask.shape != ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} must equal the ids' "
            f"{tuple(ids.shape)}"
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

    def __post_init__(self):
        check_config(self, ("vocab_size", "block_size", "n_layers"))
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
    token that follows ids[:, t]. The config's options (fast, position, bias) go to the
    constructors of the layers built here."""

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
        self.blocks = nn.ModuleList(DecoderBlock(*sizes, **options) for _ in range(c.n_layers))
        self.norm = LayerNorm(c.d_model, fused=c.fast, bias=c.bias)
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
            for w in (block.self_attn.out_proj.weight, block.ffn.fc2.weight):
                nn.init.normal_(w, 0.0, std / (2 * self.config.n_layers) ** 0.5)

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_ids(ids, self.config.vocab_size, self.config.block_size)
        x = self.tok_emb(ids)  # (B, T, D)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(ids.shape[1], device=ids.device))
        x = self.drop(x)
        mask = key_mask(attention_mask, ids)
        for block in self.blocks:
            x = block(x, mask=mask)
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


def attention_parameters(d_model: int) -> int:
    """q, k, v and output projections: a (D, D) weight and a (D,) bias each."""
    return 4 * (d_model * d_model + d_model)


def feed_forward_parameters(d_model: int, d_ff: int) -> int:
    """fc1: a (d_ff, D) weight and a (d_ff,) bias; fc2: a (D, d_ff) weight and a (D,) bias."""
    return d_model * d_ff + d_ff + d_ff * d_model + d_model


def parameters_by_formula(config: GPTConfig | EncoderDecoderConfig) -> int:
    """The parameter count of the model a config describes, from its sizes alone (for a
    BertConfig, `course_lib.bert.parameters_by_formula`)."""
    if not isinstance(config, GPTConfig | EncoderDecoderConfig):
        raise TypeError(
            "config must be a GPTConfig or an EncoderDecoderConfig (a BertConfig: "
            f"course_lib.bert.parameters_by_formula), got {type(config).__name__}"
        )
    d = config.d_model
    ln = 2 * d  # a layer norm: scale and shift
    enc_block = attention_parameters(d) + feed_forward_parameters(d, config.d_ff) + 2 * ln
    if isinstance(config, GPTConfig):
        block = enc_block  # self-attention, feed-forward, two norms: no cross-attention
        if not config.bias:  # 4 attention biases (D), fc1 (d_ff), fc2 (D), 2 norm shifts (D)
            block -= 7 * d + config.d_ff
            ln -= d
        head = 0 if config.tie_weights else config.vocab_size * d
        positions = config.block_size * d if config.position == "learned" else 0
        return config.vocab_size * d + positions + config.n_layers * block + ln + head
    dec_block = enc_block + attention_parameters(d) + ln  # plus cross-attention and its norm
    embeddings = (config.src_vocab_size + config.tgt_vocab_size + 2 * config.max_len) * d
    final_norms = 2 * ln if config.norm_first else 0
    head = d * config.tgt_vocab_size + config.tgt_vocab_size
    blocks = config.n_encoder_layers * enc_block + config.n_decoder_layers * dec_block
    return embeddings + blocks + final_norms + head
