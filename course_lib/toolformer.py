"""Toolformer (Schick et al. 2023, arXiv:2302.04761) at a laptop's scale: the self-supervised
annotation pipeline with the paper's formulas, and greedy decoding that calls the tool.

    model = new_model(tok); train_lm(model, tok, corpus, steps=3000)
    candidates, counts = annotate(model, tok, texts, Settings(), generator)   # scored calls
    kept = [c for c in candidates if c.score >= 1.0]; c_star = augment(tok, texts, kept)
    answer = solve(model, tok, "Max packs 56 boxes of 419 coins, so Max has", mode="tool")

The tool and the text of its calls are `course_lib.tools`; the texts, problems and tokenizer
`course_lib.toolformer_data`; a whole run and the shipped models `course_lib.toolformer_run`.
The pipeline, as the paper states it (section 2; appendix A): positions i where
p([ | prompt, x_<i) > tau_s, the top k of them; m calls sampled at each; every call executed;
a call kept when L- - L+ >= tau_f, with L_i(z) the cross-entropy over x_i..x_i+4 weighted by
w_t ∝ max(0, 1 - 0.2 t) (normalised to sum 1) and the call given as a *prefix* of the text
(footnote 3), L+ = L_i(call and result), L- = min(L_i(nothing), L_i(call without result)).
Deviations the scale forces (each measured in notebook 12): a learned prompt (the marker `§`
before demonstrations in pre-training) instead of few-shot prompting; header notes in
pre-training written as calls with results, so that the model can read a prefixed result; plain
texts replayed while fine-tuning.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import transformer
from course_lib.generate import generate
from course_lib.toolformer_data import (
    ToolTokenizer,
)
from course_lib.tools import calculate, call_text
from course_lib.validate import int_at_least, positive_int

# ============================================================================ the language model


def new_model(tok: ToolTokenizer, seed: int = 0) -> transformer.GPT:
    """The course GPT at the size the design was measured with: 3 layers, width 96, 4 heads,
    a context of 64 tokens, learned positions, PyTorch's default initialisation and an output
    layer of its own (tied to the embeddings, it learned to copy numbers far more slowly: 5%
    of a problem's operands copied into a call after 3,000 steps, against 72% untied)."""
    torch.manual_seed(seed)
    config = transformer.GPTConfig(
        vocab_size=len(tok),
        block_size=64,
        d_model=96,
        n_heads=4,
        n_layers=3,
        d_ff=384,
        fast=True,
        tie_weights=False,
    )
    return transformer.GPT(config)


def batch_ids(tok: ToolTokenizer, texts: list[str]) -> torch.Tensor:
    """Texts -> (B, T) ids, each `\\n text \\n`, right-padded with 0."""
    rows = [[tok.newline, *tok.encode(t), tok.newline] for t in texts]
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def train_lm(
    model: nn.Module,
    tok: ToolTokenizer,
    texts: list[str],
    steps: int,
    *,
    lr: float = 2e-3,
    batch_size: int = 32,
    warmup: int = 30,
    seed: int = 0,
    stop_after: int | None = None,
) -> list[float]:
    """Next-token training on whole texts (padding ignored): AdamW (weight decay 0.01), warm-up
    then cosine decay to lr/10 over `steps`, gradients clipped at 1. Returns every step's loss.
    stop_after: run only the first so many steps of that schedule (the reproduction test)."""
    steps, rng = positive_int(steps, "steps"), random.Random(seed)
    run_steps = steps if stop_after is None else min(steps, positive_int(stop_after, "stop_after"))
    ids = batch_ids(tok, texts)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (i - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    losses = []
    for _ in range(run_steps):
        rows = ids[rng.sample(range(len(ids)), min(batch_size, len(ids)))]
        rows = rows[:, : int((rows != 0).sum(1).max())]
        targets = rows[:, 1:].masked_fill(rows[:, 1:] == tok.pad, -100)
        logits = model(rows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def perplexity(model: nn.Module, tok: ToolTokenizer, texts: list[str]) -> float:
    """exp of the mean next-token loss over the texts (their closing newline included)."""
    model.eval()
    ids = batch_ids(tok, texts)
    targets = ids[:, 1:].masked_fill(ids[:, 1:] == tok.pad, -100)
    loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), targets.flatten(), ignore_index=-100)
    return math.exp(loss.item())


# ============================================================================ the paper's pipeline


def weights(n: int = 5) -> torch.Tensor:
    """The paper's w_t = w~_t / sum_s w~_s with w~_t = max(0, 1 - 0.2 t): (n,) for t = 0..n-1."""
    raw = torch.tensor([max(0.0, 1 - 0.2 * t) for t in range(int_at_least(n, "n", 1))])
    return raw / raw.sum()


@dataclass
class Settings:
    """The pipeline's knobs, named as in the paper (appendix A's calculator values where they
    differ from the defaults: tau_s = 0.05 here, as the default; k = 5; m = 5; tau_f = 1.0)."""

    tau_s: float = 0.05
    k: int = 5
    m: int = 5
    tau_f: float = 1.0
    max_call_tokens: int = 16


@dataclass
class Candidate:
    """One sampled and executed call for text `text` (index into the annotated texts), to be
    inserted before token `position` of the text; `score` = L- - L+ once filtered."""

    text: int
    position: int
    expr: str
    result: str
    score: float = float("nan")


def _x(tok: ToolTokenizer, text: str) -> list[int]:
    return tok.encode(text)


@torch.no_grad()
def call_positions(
    model: nn.Module, tok: ToolTokenizer, texts: list[str], settings: Settings
) -> list[tuple[int, int, float]]:
    """(text, j, p_j) for the positions where the model, prompted with `§`, would open a call
    before token j of the text: p_j = p([ | §, x_<j) > tau_s, at most the top k per text."""
    model.eval()
    found = []
    ids = batch_ids(tok, ["§" + t for t in texts])  # \n § x_0 .. x_n-1 \n
    probs = torch.softmax(model(ids).float(), dim=-1)[:, :, tok.open]  # (B, T)
    for i, text in enumerate(texts):
        n = len(_x(tok, text))
        p = probs[i, 1 : 1 + n]  # p[j]: after "\n §" and x_<j
        keep = [(float(p[j]), j) for j in range(n) if p[j] > settings.tau_s]
        found += [(i, j, pj) for pj, j in sorted(keep, reverse=True)[: settings.k]]
    return found


def parse_call(tok: ToolTokenizer, ids: list[int]) -> str | None:
    """The expression of a sampled call `Calculator ( e )` (the tokens after `[`, before the
    stop token), or None when it has another shape."""
    pieces = [tok.pieces[i] for i in ids]
    if len(pieces) < 4 or pieces[:2] != ["Calculator", "("] or pieces[-1] != ")":
        return None
    inner = pieces[2:-1]
    if not all(p.isdigit() or p in "+-*/()." for p in inner):
        return None
    return "".join(inner)


@torch.no_grad()
def sample_calls(
    model: nn.Module,
    tok: ToolTokenizer,
    texts: list[str],
    positions: list[tuple[int, int, float]],
    settings: Settings,
    generator: torch.Generator,
    batch: int = 256,
) -> tuple[list[Candidate], dict[str, int]]:
    """m calls sampled at each position from `§ x_<j [` (temperature 1, up to max_call_tokens,
    stopped at `]` or `→`; a sample that never stops is dropped, footnote 2), parsed and run on
    the calculator. Returns the executable candidates (one per distinct call) and the counts."""
    prefixes = []
    for i, j, _ in positions:
        prefix = [tok.newline, tok.prompt, *_x(tok, texts[i])[:j], tok.open]
        prefixes += [(i, j, prefix)] * settings.m
    counts = {"positions": len(positions), "sampled": len(prefixes), "well-formed": 0}
    seen, found = set(), []
    for start in range(0, len(prefixes), batch):
        chunk = prefixes[start : start + batch]
        width = max(len(p) for _, _, p in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (_, _, p) in enumerate(chunk):
            ids[r, width - len(p) :], mask[r, width - len(p) :] = torch.tensor(p), 1
        out = generate(
            model, ids, settings.max_call_tokens, attention_mask=mask, generator=generator
        )
        for r, (i, j, _) in enumerate(chunk):
            new = out[r, width:].tolist()
            stop = next((s for s, t in enumerate(new) if t in (tok.close, tok.arrow)), None)
            expr = None if stop is None else parse_call(tok, new[:stop])
            if expr is None:
                continue
            counts["well-formed"] += 1
            result = calculate(expr)
            if result is not None and (i, j, expr) not in seen:
                seen.add((i, j, expr))
                found.append(Candidate(i, j, expr, result))
    counts["executable (distinct)"] = len(found)
    return found, counts


@torch.no_grad()
def weighted_nll(token_log_probs: torch.Tensor, start: int) -> torch.Tensor:
    """L_i = -sum_t w_t log p(x_i+t | ...) for t = 0..4: token_log_probs (n,) holds
    log p(x_j | everything before x_j) for each token j of a sequence, start = i. Tokens past
    the end count nothing (the weights are not renormalised, as in the paper's sum)."""
    if token_log_probs.dim() != 1:
        raise ValueError(f"token_log_probs must be (n,), got shape {tuple(token_log_probs.shape)}")
    start = int_at_least(start, "start", 0)
    span = token_log_probs[start : start + 5]
    return -(weights(5)[: len(span)].to(span.dtype) * span).sum()


def filter_score(l_empty: float, l_no_result: float, l_plus: float) -> float:
    """L- - L+ with L- = min(L(nothing), L(call without result)): how much the call *and its
    result* lower the loss against the better of the two ways of doing without. Keep the call
    when this is >= tau_f."""
    return min(l_empty, l_no_result) - l_plus


@torch.no_grad()
def weighted_losses(
    model: nn.Module, sequences: list[list[int]], starts: list[int], batch: int = 512
) -> torch.Tensor:
    """`weighted_nll` for each sequence `\n z x`, start = the index of x_i in it."""
    out = torch.zeros(len(sequences))
    for a in range(0, len(sequences), batch):
        seqs = sequences[a : a + batch]
        ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
        logp = torch.log_softmax(model(ids).float(), dim=-1)  # row t - 1 predicts token t
        for r, (s, start) in enumerate(zip(seqs, starts[a : a + batch], strict=True)):
            token = logp[r, : len(s) - 1].gather(-1, ids[r, 1 : len(s), None])[:, 0]  # x_1..
            out[a + r] = weighted_nll(token, start - 1)  # token[j - 1] scores sequence token j
    return out


def filter_scores(
    model: nn.Module, tok: ToolTokenizer, texts: list[str], candidates: list[Candidate]
) -> list[Candidate]:
    """Score every candidate with the paper's criterion, the call given as a prefix of the text
    (footnote 3): L+ = L_j(e(c, r)), L- = min(L_j(empty), L_j(e(c))); score = L- - L+."""
    model.eval()
    seqs, starts = [], []
    for c in candidates:
        x = _x(tok, texts[c.text])
        for z in ([], tok.encode(call_text(c.expr)), tok.encode(call_text(c.expr, c.result))):
            seqs.append([tok.newline, *z, *x])
            starts.append(1 + len(z) + c.position)
    losses = weighted_losses(model, seqs, starts).reshape(-1, 3)
    for c, (empty, no_result, plus) in zip(candidates, losses.tolist(), strict=True):
        c.score = filter_score(empty, no_result, plus)
    return candidates


def result_is_right(tok: ToolTokenizer, text: str, c: Candidate) -> bool:
    """Whether the call's result is the number the text writes at the call's position."""
    x = _x(tok, text)[c.position :]
    digits = "".join(
        tok.pieces[t]
        for t in x[: next((n for n, t in enumerate(x) if not tok.pieces[t].isdigit()), len(x))]
    )
    return digits != "" and digits == c.result


def augment(tok: ToolTokenizer, texts: list[str], kept: list[Candidate]) -> list[str]:
    """x* = x_<j [Calculator(e)→r] x_>=j for the best kept call of each text (texts without a
    kept call are dropped, as in the paper)."""
    best: dict[int, Candidate] = {}
    for c in kept:
        if c.text not in best or c.score > best[c.text].score:
            best[c.text] = c
    out = []
    for i in sorted(best):
        c, x = best[i], _x(tok, texts[i])
        out.append(
            tok.decode(
                [*x[: c.position], *tok.encode(call_text(c.expr, c.result)), *x[c.position :]]
            )
        )
    return out


# ============================================================================ using the tool

MODES = ("plain", "disabled", "tool")


@dataclass
class Answer:
    """What greedy decoding wrote after a prompt, whether it called the tool, and the answer:
    the first integer after the call (or in the whole output without one)."""

    text: str
    called: bool
    number: str | None


@torch.no_grad()
def solve(
    model: nn.Module,
    tok: ToolTokenizer,
    prompt: str,
    mode: str = "tool",
    top_k: int = 1,
    max_new: int = 24,
) -> Answer:
    """Greedy decoding after prompt. mode "tool": a call starts when `[` is among the top_k
    tokens (top_k=1: plain greedy); at `→` decoding stops, the calculator runs and its result and
    `]` are inserted, then decoding goes on; at most one call per input. "disabled": `[` never
    (its probability set to 0). "plain": the model's own greedy output, nothing intervenes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    top_k = positive_int(top_k, "top_k")
    model.eval()
    cache = model.new_cache(1)
    logits = model(torch.tensor([[tok.newline, *tok.encode(prompt)]]), cache=cache)[0, -1]
    out, called, call_at = [], False, None
    for _ in range(max_new):
        if mode == "disabled" or (mode == "tool" and called):
            logits[tok.open] = float("-inf")
        nxt = int(logits.argmax())
        if (
            mode == "tool"
            and call_at is None
            and not called
            and tok.open in logits.topk(top_k).indices
        ):
            nxt = tok.open
        feed = [nxt]
        if nxt == tok.open and call_at is None:
            call_at = len(out)
        if mode == "tool" and call_at is not None and nxt in (tok.arrow, tok.close):
            expr = parse_call(tok, out[call_at + 1 :])
            result = calculate(expr) if expr is not None and nxt == tok.arrow else None
            feed += [*tok.encode(result or ""), tok.close] if nxt == tok.arrow else []
            called, call_at = True, None
        out += feed
        if nxt == tok.newline or cache.length + len(feed) > model.config.block_size:
            break
        logits = model(torch.tensor([feed]), cache=cache)[0, -1]
    text = tok.decode(out)
    after = text[text.index("]") + 1 :] if called and "]" in text else text
    number = re.search(r"-?\d+", after)
    return Answer(text, called, number.group(0) if number else None)


@dataclass
class Score:
    """Accuracy and call rate of one model on one problem set."""

    accuracy: float
    call_rate: float


def accuracy(
    model: nn.Module, tok: ToolTokenizer, problems: list, mode: str = "plain", top_k: int = 1
) -> Score:
    """The share of problems whose first number after the prompt (after the call, if one was
    made) is the answer, and the share of problems where the tool was called."""
    answers = [solve(model, tok, p.prompt, mode, top_k) for p in problems]
    right = sum(a.number == p.answer for a, p in zip(answers, problems, strict=True))
    return Score(right / len(problems), sum(a.called for a in answers) / len(problems))


def annotate(
    model: nn.Module,
    tok: ToolTokenizer,
    texts: list[str],
    settings: Settings,
    generator: torch.Generator,
) -> tuple[list[Candidate], dict[str, int]]:
    """The paper's three steps on texts: positions, sampled and executed calls, and their
    filter scores (L- - L+). Keep a candidate when its score >= settings.tau_f."""
    positions = call_positions(model, tok, texts, settings)
    candidates, counts = sample_calls(model, tok, texts, positions, settings, generator)
    return filter_scores(model, tok, texts, candidates), counts
