"""Notebook 04's exercises: layer norm, the decoder's input, a GPT's parameter count, then the
GPT itself: the pre-norm block, the model's forward pass and greedy generation.

The module-sized three are checked with shared weights: the key builds the library's module
(`course_lib.transformer.DecoderBlock` without cross-attention, `course_lib.transformer.GPT`)
with random weights drawn from a local generator, loads its state_dict into the learner's module
by name, and compares the outputs (atol 1e-6). The names the learner's modules must use:

- the block `cls(d_model, n_heads, d_ff)`: `ln1`, `attn` (a MultiHeadAttention), `ln2`, `fc1`,
  `fc2`; the library's `norm1`, `self_attn`, `norm3`, `ffn.fc1`, `ffn.fc2` (BLOCK_NAMES);
- the model `cls(config)`: the library's own names, `tok_emb`, `pos_emb`, `blocks.<i>.*` (each a
  library DecoderBlock), `norm`, `head`.

After loading, the GPT check adds the same change to both models' token embedding, as a
training step would: a tied head must follow it. Greedy generation runs on a GPT whose config
declares a shorter block_size than its position table holds (`_DeclaredContext`), so that a loop
that does not crop gives tokens, not an error. Modules are built inside
`torch.random.fork_rng`, so a check leaves the global RNG as it was.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generate
from course_lib import transformer as T
from course_lib.check import Verdict, case, check, mistake

# ====================================================================== exercise 1: layer norm


def _ln_unbiased(x, weight, bias, eps):  # torch.var divides by D - 1 unless told otherwise
    xc = x - x.mean(-1, keepdim=True)
    return xc / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias


def _ln_eps_outside(x, weight, bias, eps):
    xc = x - x.mean(-1, keepdim=True)
    return xc / (xc.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight + bias


def _ln_over_all(x, weight, bias, eps):  # statistics over every dimension but the batch
    dims = tuple(range(1, x.dim()))
    xc = x - x.mean(dims, keepdim=True)
    return xc / torch.sqrt(xc.pow(2).mean(dims, keepdim=True) + eps) * weight + bias


def layer_norm_by_hand(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x (..., D), weight (D,), bias (D,), eps) -> (..., D), against F.layer_norm."""
    g = torch.Generator().manual_seed(1)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return check(
        fn,
        reference=lambda x, weight, bias, eps: F.layer_norm(x, x.shape[-1:], weight, bias, eps),
        cases=[
            case(r(3, 8), torch.ones(8), torch.zeros(8), 1e-5, label="(3, 8), no affine"),
            case(r(2, 4, 6), r(6), r(6), 1e-5, label="(2, 4, 6)"),
            case(r(2, 3, 5), r(5), r(5), 1.0, label="eps = 1"),
            case(r(1, 7) * 50 + 3, r(7), r(7), 1e-5, label="big values"),
        ],
        mistakes=[
            mistake(
                "the unbiased variance",
                "layer norm divides the squared deviations by D, not D - 1 "
                "(x.var() is unbiased by default; use correction=0 or write the mean yourself)",
                _ln_unbiased,
            ),
            mistake(
                "eps outside the square root",
                "eps goes inside: (x - mean) / sqrt(var + eps)",
                _ln_eps_outside,
            ),
            mistake(
                "statistics over the whole example",
                "each vector is normalised over its own last dimension only (dim=-1), "
                "not over the sequence as well",
                _ln_over_all,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== exercise 2: decoder input


def _shift_left(targets, start_id):  # the next-token *labels*, not the decoder's input
    return torch.cat([targets[:, 1:], torch.full_like(targets[:, :1], start_id)], dim=1)


def _start_appended(targets, start_id):  # keeps T + 1 positions
    return torch.cat([torch.full_like(targets[:, :1], start_id), targets], dim=1)


def decoder_input(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(targets (B, T), start_id) -> (B, T) [start, t_0 .. t_{T-2}], against T.shift_right."""
    g = torch.Generator().manual_seed(6)
    return check(
        fn,
        reference=T.shift_right,
        cases=[
            case(torch.tensor([[5, 6, 7, 8]]), 1, label="one row"),
            case(torch.randint(2, 50, (3, 6), generator=g), 0, label="a batch of 3"),
            case(torch.tensor([[9]]), 2, label="length 1"),
        ],
        mistakes=[
            mistake(
                "the targets unshifted",
                "position t must not see target t: shift right by one and put the start id first",
                lambda targets, start_id: targets,
            ),
            mistake(
                "shifted left",
                "that is the label sequence of a language model; the decoder's input is shifted "
                "right, starting with the start id",
                _shift_left,
            ),
            mistake(
                "start id added but nothing dropped",
                "keep T positions: drop the last target after putting the start id in front",
                _start_appended,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== exercise 3: GPT's size


def _gpt_count(vocab_size, block_size, d_model, n_layers, d_ff):
    cfg = T.GPTConfig(vocab_size, block_size, d_model, n_heads=1, n_layers=n_layers, d_ff=d_ff)
    return T.parameters_by_formula(cfg)


def _gpt_count_untied(vocab_size, block_size, d_model, n_layers, d_ff):
    return _gpt_count(vocab_size, block_size, d_model, n_layers, d_ff) + vocab_size * d_model


def _gpt_count_no_norms(vocab_size, block_size, d_model, n_layers, d_ff):
    norms = (2 * n_layers + 1) * 2 * d_model
    return _gpt_count(vocab_size, block_size, d_model, n_layers, d_ff) - norms


def _gpt_count_no_biases(vocab_size, block_size, d_model, n_layers, d_ff):
    biases = n_layers * (4 * d_model + d_ff + d_model)
    return _gpt_count(vocab_size, block_size, d_model, n_layers, d_ff) - biases


def gpt_parameter_count(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(vocab_size, block_size, d_model, n_layers, d_ff) -> the parameter count of a tied GPT,
    against T.parameters_by_formula."""
    return check(
        fn,
        reference=_gpt_count,
        cases=[
            case(1000, 128, 64, 4, 256, label="a small GPT"),
            case(50257, 1024, 768, 12, 3072, label="GPT-2 small's sizes"),
            case(10, 4, 2, 1, 3, label="tiny"),
        ],
        mistakes=[
            mistake(
                "the output layer counted separately",
                "the output layer reuses the token embedding matrix (tied weights): count it once",
                _gpt_count_untied,
            ),
            mistake(
                "layer norms forgotten",
                "each block has two layer norms and the model a final one, each with a scale and "
                "a shift of size D",
                _gpt_count_no_norms,
            ),
            mistake(
                "biases forgotten",
                "every Linear in a block has a bias: D each for q, k, v, out and the second "
                "feed-forward layer, d_ff for the first",
                _gpt_count_no_biases,
            ),
        ],
        quiet=quiet,
    )


# ====================================================================== shared weights


@torch.no_grad()
def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter drawn from a local generator: layer-norm scales near 1 and shifts near 0
    (so that two norms differ), linear weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2),
    embeddings ~ N(0, 1). A tied matrix is drawn once."""
    g = torch.Generator().manual_seed(seed)
    norms = {id(m.weight) for m in model.modules() if isinstance(m, T.LayerNorm)}
    for p in model.parameters():  # each distinct parameter once
        noise = torch.randn(p.shape, generator=g)
        if id(p) in norms:
            p.copy_(1 + 0.2 * noise)
        elif p.dim() == 1:
            p.copy_(0.1 * noise)
        elif p.dim() == 2 and p.shape[1] > 0:
            p.copy_(noise / p.shape[1] ** 0.5)
        else:
            p.copy_(noise)
    for m in model.modules():  # embeddings: unit scale, as nn.Embedding starts
        if isinstance(m, nn.Embedding):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    return model


def _load(learner: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load `state` into the learner's module by name, with a clear error when names differ."""
    theirs = dict(learner.state_dict())
    missing = [k for k in state if k not in theirs]
    unexpected = [k for k in theirs if k not in state]
    if missing or unexpected:
        want, got = (list(dict.fromkeys(k.split(".")[0] for k in d)) for d in (state, theirs))
        differ = f"expected the attributes {want}, got {got}" if want != got else ""
        differ = differ or f"missing {missing[:4]}, unexpected {unexpected[:4]}"
        raise ValueError(
            f"{what}'s parameters must carry the names given in the exercise: {differ}"
        )
    wrong = [
        f"{k} {tuple(theirs[k].shape)} (should be {tuple(v.shape)})"
        for k, v in state.items()
        if theirs[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{what}'s parameters have the wrong shapes: {', '.join(wrong[:3])}")
    learner.load_state_dict(state)


class _AsLearner:
    """Calls `run` (the key's wrapper around the learner's code) but carries the learner's
    `__code__` (a function's, or a class's forward), so that a verdict for an error quotes the
    learner's own line, not the wrapper's."""

    def __init__(self, run: Callable, code: object):
        self.run, self.__code__ = run, code

    def __call__(self, *args, **kwargs):
        return self.run(*args, **kwargs)


def _as_learner(run: Callable, learner: object) -> Callable:
    target = getattr(learner, "forward", learner)  # a class: its forward
    return _AsLearner(run, getattr(target, "__code__", None))


# ====================================================================== exercise 4: the block

# the library's DecoderBlock (cross_attention=False) name -> the learner's block's name
BLOCK_NAMES = {
    "norm1.": "ln1.",
    "self_attn.": "attn.",
    "norm3.": "ln2.",
    "ffn.fc1.": "fc1.",
    "ffn.fc2.": "fc2.",
}


def _library_block(d_model: int, n_heads: int, d_ff: int, seed: int) -> T.DecoderBlock:
    with torch.random.fork_rng(devices=[]):
        block = T.DecoderBlock(d_model, n_heads, d_ff, cross_attention=False)
    return _randomise(block, seed).eval()


def _block_state(block: T.DecoderBlock) -> dict[str, torch.Tensor]:
    """The library block's state_dict under the learner's names."""
    out = {}
    for prefix, mine in BLOCK_NAMES.items():  # in the learner's order: ln1, attn, ln2, fc1, fc2
        for name, value in block.state_dict().items():
            if name.startswith(prefix):
                out[mine + name[len(prefix) :]] = value
    return out


def _run_block(cls: type, d_model: int, n_heads: int, d_ff: int, x: torch.Tensor, seed: int):
    """The learner's block with the library block's weights, on x (B, T, D)."""
    with torch.random.fork_rng(devices=[]):
        learner = cls(d_model, n_heads, d_ff)
    _load(learner, _block_state(_library_block(d_model, n_heads, d_ff, seed)), cls.__name__)
    with torch.no_grad():
        return learner(x)


def _block_reference(d_model, n_heads, d_ff, x, seed):
    with torch.no_grad():
        return _library_block(d_model, n_heads, d_ff, seed)(x)


def _block_variant(
    *,
    pre_norm: bool = True,
    causal: bool = True,
    attn_residual: bool = True,
    ffn_residual: bool = True,
    act: Callable = F.gelu,
    ffn_norm: str = "norm3",
) -> Callable:
    """A wrong block (one flag changed), written with the library block's own parts."""

    @torch.no_grad()
    def wrong(d_model, n_heads, d_ff, x, seed):
        b = _library_block(d_model, n_heads, d_ff, seed)
        ln2 = getattr(b, ffn_norm)

        def attn(h):
            return b.self_attn(h, is_causal=causal)

        def ffn(h):
            return b.ffn.fc2(act(b.ffn.fc1(h)))

        if not pre_norm:
            x = b.norm1(x + attn(x))
            return ln2(x + ffn(x))
        h = attn(b.norm1(x))
        x = x + h if attn_residual else h
        h = ffn(ln2(x))
        return x + h if ffn_residual else h

    return wrong


def gpt_block(cls: type, *, quiet: bool = False) -> Verdict:
    """cls(d_model, n_heads, d_ff): a pre-norm causal block, forward(x (B, T, D)) -> (B, T, D),
    against T.DecoderBlock(..., cross_attention=False) with the same weights (BLOCK_NAMES)."""
    g = torch.Generator().manual_seed(4)

    def x(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return check(
        _as_learner(functools.partial(_run_block, cls), cls),
        reference=_block_reference,
        cases=[
            case(16, 4, 32, x(2, 7, 16), 1, label="d_model 16, 4 heads, (2, 7, 16)"),
            case(8, 2, 24, x(1, 1, 8), 2, label="one position"),
            case(12, 3, 20, x(3, 5, 12) * 3, 3, label="3 heads, larger inputs"),
        ],
        mistakes=[
            mistake(
                "post-norm instead of pre-norm",
                "a GPT block normalises the input of each sub-layer, x + attn(ln1(x)), and "
                "leaves the residual stream itself unnormalised",
                _block_variant(pre_norm=False),
            ),
            mistake(
                "attention without the causal mask",
                "position t may look at positions 0..t only: call the attention with "
                "is_causal=True",
                _block_variant(causal=False),
            ),
            mistake(
                "the residual around attention missing",
                "add the attention's output to its input: x = x + attn(ln1(x))",
                _block_variant(attn_residual=False),
            ),
            mistake(
                "the residual around the feed-forward missing",
                "add the feed-forward's output to its input: x = x + mlp(ln2(x))",
                _block_variant(ffn_residual=False),
            ),
            mistake(
                "ln1 used for both sub-layers",
                "each sub-layer has its own layer norm: ln2 before the feed-forward",
                _block_variant(ffn_norm="norm1"),
            ),
            mistake(
                "ReLU in the feed-forward",
                "the feed-forward uses the exact GELU: F.gelu between fc1 and fc2",
                _block_variant(act=F.relu),
            ),
        ],
        name=getattr(cls, "__name__", None),
        atol=1e-6,
        quiet=quiet,
    )


# ====================================================================== exercise 5: the GPT


def _library_gpt(config: T.GPTConfig, seed: int) -> T.GPT:
    with torch.random.fork_rng(devices=[]):
        model = T.GPT(config)
    return _randomise(model, seed).eval()


def _nudge(config: T.GPTConfig, seed: int) -> torch.Tensor:
    """(V, D): what the check adds to the token embedding after loading, as a training step
    would change it; a tied head reads the same matrix and so moves with it."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return 0.5 * torch.randn(config.vocab_size, config.d_model, generator=g)


def _run_gpt(cls: type, config: T.GPTConfig, ids: torch.Tensor, seed: int) -> torch.Tensor:
    """The learner's logits (B, T, V): the library GPT's weights loaded, the embedding nudged."""
    with torch.random.fork_rng(devices=[]):
        learner = cls(config)
    _load(learner, _library_gpt(config, seed).state_dict(), cls.__name__)
    with torch.no_grad():
        learner.tok_emb.weight.add_(_nudge(config, seed))
        return learner(ids)


def _gpt_reference(config, ids, seed):
    model = _library_gpt(config, seed)
    with torch.no_grad():
        model.tok_emb.weight.add_(_nudge(config, seed))
        return model(ids)


def _gpt_variant(
    *,
    positions: bool = True,
    final_norm: bool = True,
    softmax: bool = False,
    tied: bool | None = None,
    activation: str | None = None,
) -> Callable:
    """A wrong GPT (one thing changed), from the library model's parts. tied=False: the head
    never tied (it keeps the loaded matrix while the embedding is nudged); tied=True: always
    tied (the head's matrix, loaded last, overwrites the embedding's, then both are nudged);
    activation: the blocks' activation whatever the config says."""

    @torch.no_grad()
    def wrong(config, ids, seed):
        m = _library_gpt(config, seed)
        # (V, D) each, as loading leaves two separate matrices (the same values when tied)
        emb, head = m.tok_emb.weight.clone(), m.head.weight.clone()
        if tied is True or (tied is None and config.tie_weights):
            emb = head = head + _nudge(config, seed)  # one matrix, the head's (loaded last)
        else:
            emb = emb + _nudge(config, seed)
        x = F.embedding(ids, emb)  # (B, T, D)
        if positions:
            x = x + m.pos_emb(torch.arange(ids.shape[1]))
        for block in m.blocks:
            if activation is not None:
                block.ffn.act = T.ACTIVATIONS[activation]
            x = block(x)
        x = m.norm(x) if final_norm else x
        logits = x @ head.T  # (B, T, V)
        return torch.softmax(logits, -1) if softmax else logits

    return wrong


def gpt(cls: type, *, quiet: bool = False) -> Verdict:
    """cls(config: T.GPTConfig), forward(ids (B, T)) -> logits (B, T, V), against T.GPT with
    the same weights (the library's parameter names), after a nudge to the token embedding that
    a tied head must follow."""
    g = torch.Generator().manual_seed(5)

    def ids(vocab: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, vocab, shape, generator=g)

    def config(**kw) -> T.GPTConfig:
        sizes = dict(vocab_size=23, block_size=8, d_model=16, n_heads=4, n_layers=2, d_ff=32)
        return T.GPTConfig(**{**sizes, **kw})

    return check(
        _as_learner(functools.partial(_run_gpt, cls), cls),
        reference=_gpt_reference,
        cases=[
            case(config(), ids(23, 2, 8), 1, label="2 layers, tied, a full context"),
            case(config(n_layers=1), ids(23, 1, 3), 2, label="1 layer, 3 positions"),
            case(config(tie_weights=False), ids(23, 3, 5), 3, label="head not tied"),
            case(
                config(n_layers=3, activation="gelu_tanh", vocab_size=11),
                ids(11, 2, 1),
                4,
                label="3 layers, tanh GELU, one position",
            ),
        ],
        mistakes=[
            mistake(
                "the final layer norm missing",
                "a pre-norm stack never normalises its residual stream: apply the final norm "
                "after the last block, before the head",
                _gpt_variant(final_norm=False),
            ),
            mistake(
                "the positions left out",
                "add pos_emb(positions 0..T-1) to the token embeddings: attention alone cannot "
                "tell the order",
                _gpt_variant(positions=False),
            ),
            mistake(
                "probabilities instead of logits",
                "return the head's output itself: the loss and the sampler apply the softmax",
                _gpt_variant(softmax=True),
            ),
            mistake(
                "the head not tied to the embedding",
                "when config.tie_weights, the head reuses the embedding matrix, "
                "head.weight = tok_emb.weight, so that one update changes both (the checker "
                "changes the embedding after loading the weights)",
                _gpt_variant(tied=False),
            ),
            mistake(
                "the head tied although the config says not",
                "tie the head only when config.tie_weights is True",
                _gpt_variant(tied=True),
            ),
            mistake(
                "config.activation ignored",
                "build the blocks with activation=config.activation",
                _gpt_variant(activation="gelu"),
            ),
        ],
        name=getattr(cls, "__name__", None),
        atol=1e-6,
        quiet=quiet,
    )


# ====================================================================== exercise 6: greedy


class _DeclaredContext(nn.Module):
    """A GPT whose config declares a `block_size` shorter than its position table: it also runs
    on longer inputs, so a generation loop that forgets to crop returns tokens (predicted from
    too much context), which the checker can name, instead of a T.GPT's ValueError."""

    def __init__(self, gpt: T.GPT, block_size: int):
        super().__init__()
        self.gpt = gpt
        self.config = dataclasses.replace(gpt.config, block_size=block_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.gpt(ids)  # (B, T, V)


def _generation_model(config: T.GPTConfig, seed: int) -> _DeclaredContext:
    longer = dataclasses.replace(config, block_size=4 * config.block_size)
    return _DeclaredContext(_library_gpt(longer, seed), config.block_size)


def _greedy_reference(config, prompt, max_new_tokens, seed):
    model = _generation_model(config, seed)
    return generate.generate(model, prompt, max_new_tokens, do_sample=False)


def _greedy_variant(*, crop: bool = True, position: int = -1, keep_prompt: bool = True):
    @torch.no_grad()
    def wrong(config, prompt, max_new_tokens, seed):
        model, ids = _generation_model(config, seed), prompt
        for _ in range(max_new_tokens):
            context = ids[:, -config.block_size :] if crop else ids
            nxt = model(context)[:, position, :].argmax(dim=-1, keepdim=True)  # (B, 1)
            ids = torch.cat([ids, nxt], dim=1)
        return ids if keep_prompt else ids[:, prompt.shape[1] :]

    return wrong


def greedy_generate(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(model, ids (B, T), max_new_tokens) -> (B, T + max_new_tokens), against
    course_lib.generate.generate(..., do_sample=False) on the same model."""
    g = torch.Generator().manual_seed(6)

    def prompt(vocab: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, vocab, shape, generator=g)

    def config(**kw) -> T.GPTConfig:
        sizes = dict(vocab_size=17, block_size=5, d_model=16, n_heads=2, n_layers=2, d_ff=32)
        return T.GPTConfig(**{**sizes, "tie_weights": False, **kw})

    def run(config, prompt, max_new_tokens, seed):
        return fn(_generation_model(config, seed), prompt, max_new_tokens)

    return check(
        _as_learner(run, fn),
        reference=_greedy_reference,
        cases=[
            case(config(), prompt(17, 2, 3), 8, 1, label="block 5, prompt 3, 8 new tokens"),
            case(config(block_size=3), prompt(17, 1, 6), 4, 2, label="a prompt past block_size"),
            case(config(vocab_size=9), prompt(9, 3, 1), 5, 3, label="one-token prompts"),
            case(config(), prompt(17, 1, 2), 0, 4, label="no new tokens"),
        ],
        mistakes=[
            mistake(
                "the context not cropped",
                "the model saw at most block_size positions in training: feed it the last "
                "model.config.block_size tokens, ids[:, -block_size:]",
                _greedy_variant(crop=False),
            ),
            mistake(
                "the argmax of the first position",
                "the next token is scored by the last position: logits[:, -1, :]",
                _greedy_variant(position=0),
            ),
            mistake(
                "only the new tokens returned",
                "return the prompt followed by the new tokens, (B, T + max_new_tokens)",
                _greedy_variant(keep_prompt=False),
            ),
        ],
        name=getattr(fn, "__name__", None),
        quiet=quiet,
    )
