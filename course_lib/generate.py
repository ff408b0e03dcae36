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
) -> torch.Tensor:
    """Extend ids (B, T) by max_new_tokens tokens -> (B, T + max_new_tokens).

    model(ids) must return logits (B, T, V). Each step feeds the last block_size tokens (a GPT's
    context; an RNN, which has no block_size, gets the whole sequence), takes the last row's
    logits (B, V) and picks the next token: greedy when do_sample is False, otherwise a draw
    from next_token_probs (with `generator` for reproducible draws). The model is put in eval
    mode and restored afterwards.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise TypeError("ids must be an integer tensor of token ids (batch, seq)")
    if ids.dim() != 2:
        raise ValueError(f"ids must be (batch, seq), got shape {tuple(ids.shape)}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError("the prompt is empty: ids needs at least one token per row")
    max_new_tokens = int_at_least(max_new_tokens, "max_new_tokens", 0)
    check_temperature(temperature)
    block = _context_length(model)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            context = ids if block is None else ids[:, -block:]
            logits = model(context)[:, -1, :]  # (B, V)
            if do_sample:
                probs = next_token_probs(logits.float(), temperature, top_k, top_p)
                # drawn on the CPU, so one seeded CPU generator serves every device
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(ids.device)
            else:
                nxt = greedy(logits)
            ids = torch.cat([ids, nxt.to(ids.dtype)], dim=1)
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
