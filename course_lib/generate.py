"""Decoding a language model: greedy, temperature, top-k and top-p (nucleus) sampling, a
generation loop, and the command-line "real-time inference" step (seed section 3.2, 实时推断).

    logits = model(ids)[:, -1]                       # (B, V): scores for the next token
    probs = next_token_probs(logits, temperature=0.8, top_k=20, top_p=0.9)   # (B, V)
    out = generate(model, ids, max_new_tokens=50, temperature=0.8, top_p=0.9, generator=g)
    text = complete(model, tokenizer, "ROMEO:", 50, top_p=0.9, seed=1)
    python -m course_lib.generate --checkpoint PATH --prompt TEXT

The command reads any course checkpoint (`course_lib.checkpoints`: a notebook's model or the
trainer's `ckpt.pt`).

Every filter works on logits (B, V) and returns logits (B, V) with the dropped tokens set to
-inf, so filters compose; probabilities are softmax of the result.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from course_lib import checkpoints
from course_lib.validate import int_at_least, positive_int


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a float tensor (batch, vocab)")
    if logits.dim() != 2 or logits.shape[-1] == 0:
        raise ValueError(f"logits must be (batch, vocab >= 1), got shape {tuple(logits.shape)}")


def check_temperature(temperature: object) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy for the limit 0), got {temperature}")
    return float(temperature)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits (B, V) / temperature: < 1 sharpens the distribution, > 1 flattens it."""
    _check_logits(logits)
    return logits / check_temperature(temperature)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest logits of each row (B, V), set the rest to -inf.

    Ties at the k-th value are all kept (the threshold is the k-th largest value).
    """
    _check_logits(logits)
    k = positive_int(k, "k")
    if k > logits.shape[-1]:
        raise ValueError(f"k={k} is larger than the vocabulary ({logits.shape[-1]} tokens)")
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to
    at least p (always at least the top token); the rest become -inf. logits (B, V) -> (B, V).
    """
    _check_logits(logits)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
    drop_sorted = before >= p  # a token is kept while the mass before it is still < p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Temperature, then top-k, then top-p, then softmax: logits (B, V) -> probabilities (B, V)."""
    x = apply_temperature(logits, temperature)
    if top_k is not None:
        x = top_k_filter(x, top_k)
    if top_p is not None:
        x = top_p_filter(x, top_p)
    return torch.softmax(x, dim=-1)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row: logits (B, V) -> ids (B, 1) (ties: lowest id)."""
    _check_logits(logits)
    return logits.argmax(dim=-1, keepdim=True)


def _context_length(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "block_size", None)


def _left_padding(mask: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask must be {tuple(ids.shape)}, got {tuple(mask.shape)}")
    m = mask.to(torch.long)
    if not ((m == 0) | (m == 1)).all() or (m.diff(dim=1) < 0).any() or (m[:, -1] == 0).any():
        raise ValueError(
            "attention_mask must be 0s then 1s in every row (left padding, the last token real)"
        )
    return m


def _row_positions(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Each row's positions counted from its first real token (pads sit at 0)."""
    return None if mask is None else (mask.cumsum(dim=1) - 1).clamp(min=0)


def _next_logits(model, ids, mask, state: dict) -> torch.Tensor:
    """The next-token logits (B, V) of the window ids[:, state["start"]:], by a cache if
    state["cache"] is one (new positions only; rebuilt when the window moves) or by running
    the whole window."""
    block, cache = state["block"], state["cache"]
    if block is not None and ids.shape[1] - state["start"] > block:  # the window is full
        state["start"] = ids.shape[1] - state["keep"]
        if cache is not None:
            cache.reset()
    if cache is None and block is None:  # an RNN: the whole sequence
        return model(ids)[:, -1, :]
    window = ids[:, state["start"] :]
    m = None if mask is None else mask[:, state["start"] :]
    if cache is None:
        padded = {} if m is None else {"attention_mask": m, "positions": _row_positions(m)}
        return model(window, **padded)[:, -1, :]
    new = window[:, cache.length :]  # the prompt (or the kept window), then one token a step
    pos = _row_positions(m)
    pos = None if pos is None else pos[:, cache.length :]
    return model(new, attention_mask=m, cache=cache, positions=pos)[:, -1, :]


@torch.no_grad()
def generate(
    model: nn.Module,
    ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    keep: int | None = None,
) -> torch.Tensor:
    """Extend ids (B, T) by max_new_tokens tokens -> (B, T + max_new_tokens).

    model(ids) must return logits (B, T, V). Each step takes the last row's logits (B, V) of the
    current window and picks the next token: greedy when do_sample is False, otherwise a draw
    from next_token_probs (with `generator` for reproducible draws). The model is put in eval
    mode and restored afterwards.

    A GPT (a model with `new_cache`) keeps a key/value cache (use_cache=True, the default): the
    prompt is run once, then each step feeds one new token. The window: a GPT sees at most
    block_size tokens; when the next step would need more, the window moves to the newest
    `keep` tokens (default block_size: it slides by one token a step) and the cache is rebuilt
    from them, since every cached key depends on the tokens that left. A smaller keep (say
    three quarters of block_size) rebuilds once every block_size - keep steps instead of every
    step, for less context. use_cache=False runs the whole window every step with the same
    policy, so both give the same tokens (logits equal to float rounding). An RNN (no
    block_size) sees the whole sequence.
    attention_mask (B, T): 1 = token, 0 = left padding; each row's positions start at its first
    real token, so a padded row continues as it would alone.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise TypeError("ids must be an integer tensor of token ids (batch, seq)")
    if ids.dim() != 2:
        raise ValueError(f"ids must be (batch, seq), got shape {tuple(ids.shape)}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError("the prompt is empty: ids needs at least one token per row")
    max_new_tokens = int_at_least(max_new_tokens, "max_new_tokens", 0)
    check_temperature(temperature)
    mask = _left_padding(attention_mask, ids)
    block = _context_length(model)
    if mask is not None and block is None:
        raise ValueError("attention_mask needs a model with a context window (a GPT)")
    cache = model.new_cache(ids.shape[0]) if use_cache and hasattr(model, "new_cache") else None
    start = 0 if block is None else max(0, ids.shape[1] - block)  # the prompt's last window
    if keep is not None and block is not None:
        keep = int_at_least(keep, "keep", 1)
        if keep > block:
            raise ValueError(f"keep={keep} is more than the context of {block} tokens")
    state = {"block": block, "cache": cache, "start": start, "keep": keep or block}
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            logits = _next_logits(model, ids, mask, state)  # (B, V)
            if do_sample:
                probs = next_token_probs(logits.float(), temperature, top_k, top_p)
                # drawn on the CPU, so one seeded CPU generator serves every device
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(ids.device)
            else:
                nxt = greedy(logits)
            ids = torch.cat([ids, nxt.to(ids.dtype)], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    finally:
        model.train(was_training)
    return ids


def complete(
    model: nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    do_sample: bool = True,
    seed: int = 0,
) -> str:
    """Prompt text -> prompt + generated text (a seeded generator makes draws reproducible)."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("prompt is empty: give at least one character or word")
    g = torch.Generator().manual_seed(seed)
    param = next(model.parameters(), None)
    out = generate(
        model,
        torch.tensor([ids], device=None if param is None else param.device),
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        do_sample=do_sample,
        generator=g,
    )
    return tokenizer.decode(out[0].tolist())


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success; 2 with `error: ...` for a bad checkpoint or argument."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.generate", description="Continue a prompt with a checkpoint."
    )
    parser.add_argument(
        "--checkpoint", required=True, help="a course checkpoint (save_checkpoint, the trainer)"
    )
    parser.add_argument("--prompt", required=True, help="the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--greedy", action="store_true", help="pick the most likely token")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model, tokenizer = checkpoints.load_model(args.checkpoint)
    except checkpoints.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        text = complete(
            model,
            tokenizer,
            args.prompt,
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            do_sample=not args.greedy,
            seed=args.seed,
        )
    except ValueError as e:
        parser.error(str(e))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
