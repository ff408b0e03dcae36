"""BERT, the encoder-only Transformer: its config, embeddings and model, sentence pooling and a
parameter count by hand.

    cfg = BertConfig()                                      # all-MiniLM-L6-v2's sizes
    out = Bert(cfg)(input_ids, attention_mask)              # BertOutput
    vectors = mean_pool(out.last_hidden_state, attention_mask)   # (B, D): one vector per text

Shapes: B batch, T sequence length, D = d_model.

- `BertConfig` (frozen and checked; `BertConfig.from_hf` reads a Hugging Face config.json) ->
  `Bert`: word + position + token-type embeddings (`BertEmbeddings`), n_layers post-norm
  `course_lib.transformer.EncoderBlock`s and an optional pooler on [CLS]; it returns a
  `BertOutput` (every layer's hidden states, the pooler's output).
- `mean_pool`: the sentence vector of sentence-transformers models, the mean over real tokens.
- `parameters_by_formula(config)`: the parameter count from the sizes alone; the tests hold it
  equal to `course_lib.transformer.count_parameters(Bert(config))`.

`course_lib.pretrained.minilm_encoder` loads all-MiniLM-L6-v2's weights into a `Bert`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.transformer import (
    EncoderBlock,
    LayerNorm,
    attention_parameters,
    check_config,
    check_ids,
    feed_forward_parameters,
    key_mask,
)


@dataclass(frozen=True)
class BertConfig:
    """An encoder-only Transformer; the defaults are all-MiniLM-L6-v2's."""

    vocab_size: int = 30522
    max_position: int = 512
    type_vocab_size: int = 2
    d_model: int = 384
    n_heads: int = 12
    n_layers: int = 6
    d_ff: int = 1536
    dropout: float = 0.0
    activation: str = "gelu"
    eps: float = 1e-12
    pooler: bool = True

    def __post_init__(self):
        check_config(self, ("vocab_size", "max_position", "type_vocab_size", "n_layers"))

    @classmethod
    def from_hf(cls, cfg: dict) -> BertConfig:
        """From a Hugging Face BERT config.json dict (the fields the course's model uses)."""
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(
            vocab_size=cfg["vocab_size"],
            max_position=cfg["max_position_embeddings"],
            type_vocab_size=cfg["type_vocab_size"],
            d_model=cfg["hidden_size"],
            n_heads=cfg["num_attention_heads"],
            n_layers=cfg["num_hidden_layers"],
            d_ff=cfg["intermediate_size"],
            activation={"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh"}[cfg["hidden_act"]],
            eps=cfg["layer_norm_eps"],
        )


@dataclass
class BertOutput:
    """last_hidden_state (B, T, D); hidden_states: the embeddings' output and each layer's,
    n_layers + 1 tensors of (B, T, D); pooler_output (B, D) or None."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]
    pooler_output: torch.Tensor | None


class BertEmbeddings(nn.Module):
    """word + position + token-type embeddings, then layer norm and dropout: (B, T) -> (B, T, D)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.d_model)
        self.position = nn.Embedding(c.max_position, c.d_model)
        self.token_type = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = LayerNorm(c.d_model, c.eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(pos) + self.token_type(token_type_ids)
        return self.drop(self.norm(x))


class Bert(nn.Module):
    """BERT: an encoder-only Transformer with post-norm blocks (norm after each residual).

    forward(input_ids (B, T), attention_mask (B, T) 1/0 or None, token_type_ids (B, T) or None)
    -> BertOutput. One vector per position comes out, not one per text: a sentence vector is
    a pooling of them (mean over real tokens, or the pooler on [CLS]).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        c = self.config = config
        self.embeddings = BertEmbeddings(c)
        self.layers = nn.ModuleList(
            EncoderBlock(
                c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, norm_first=False, eps=c.eps
            )
            for _ in range(c.n_layers)
        )
        self.pooler = nn.Linear(c.d_model, c.d_model) if c.pooler else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        c = self.config
        check_ids(input_ids, c.vocab_size, c.max_position, "input_ids")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError("token_type_ids must have the shape of input_ids")
        mask = key_mask(attention_mask, input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        hidden = [x]
        for layer in self.layers:
            x = layer(x, mask=mask)
            hidden.append(x)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return BertOutput(x, tuple(hidden), pooled)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the vectors of real tokens: hidden (B, T, D), attention_mask (B, T) -> (B, D)."""
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden (B, T, D) and attention_mask (B, T) must agree, got "
            f"{tuple(hidden.shape)} and {tuple(attention_mask.shape)}"
        )
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def parameters_by_formula(config: BertConfig) -> int:
    """The parameter count of the Bert a config describes, from its sizes alone."""
    if not isinstance(config, BertConfig):
        raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
    d = config.d_model
    ln = 2 * d  # a layer norm: scale and shift
    embeddings = (config.vocab_size + config.max_position + config.type_vocab_size) * d + ln
    block = attention_parameters(d) + feed_forward_parameters(d, config.d_ff) + 2 * ln
    pooler = d * d + d if config.pooler else 0
    return embeddings + config.n_layers * block + pooler
