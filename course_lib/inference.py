"""Efficient inference, measured: the key/value cache's speed, int8 weights, speculative decoding
and distillation (seed sections 8.2, 8.3, 9.5 and 1.2).

    seconds = step_times(model, ids, 200, use_cache=True)   # one entry per new token
    q, scale = quantize_per_channel(linear.weight)          # int8 (out, in), float (out, 1)
    small = quantize_model(model)                           # every nn.Linear -> Int8Linear
    out, stats = speculative_generate(model, draft, ids, 100, k=4)
    loss = distillation_loss(student_logits, teacher_logits, targets, temperature=2.0)

The cache itself is `course_lib.attention.KVCache`, used by `GPT.forward(..., cache=)` and by
`course_lib.generate.generate` (by default). Quantization follows torchao's int8 weight-only
recipe (symmetric, one scale per output row: scale = max|w| / 127.5, q = round(w / scale)
clamped to [-128, 127]), so `torchao_int8` can check it value for value.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.generate import greedy
from course_lib.train_data import eval_plan, windows
from course_lib.validate import fraction, int_at_least, positive_int

# ============================================================================ the cache's speed


@torch.no_grad()
def step_times(model: nn.Module, ids: torch.Tensor, n_new: int, use_cache: bool) -> list[float]:
    """Seconds for each of n_new greedy steps after the prompt ids (B, T): with the cache
    (`model.new_cache`), step i feeds one token; without, the whole sequence so far. The prompt
    plus the new tokens must fit the context (no window moves inside a timing)."""
    n_new = positive_int(n_new, "n_new")
    block = model.config.block_size
    if ids.shape[1] + n_new > block:
        raise ValueError(f"prompt {ids.shape[1]} + n_new {n_new} is over the context of {block}")
    model.eval()
    cache = model.new_cache(ids.shape[0]) if use_cache else None
    seconds = []
    for _ in range(n_new):
        start = time.perf_counter()
        new = ids if cache is None else ids[:, cache.length :]
        nxt = greedy(model(new, cache=cache)[:, -1, :])
        ids = torch.cat([ids, nxt], dim=1)
        seconds.append(time.perf_counter() - start)
    return seconds


# ============================================================================ int8 weights

INT8_LEVELS = 127.5  # max|w| maps to 127.5 steps: torchao's symmetric int8 (range -128..127)


def _check_weight(w: object) -> torch.Tensor:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.dim() != 2:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must be a 2-D float weight (out, in), got {shape}")
    if not torch.isfinite(w).all():
        raise ValueError("w holds inf or NaN: a scale cannot cover it")
    return w


def _quantize(w: torch.Tensor, amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = (amax.float() / INT8_LEVELS).clamp(min=torch.finfo(torch.float32).eps)
    q = torch.round(w.float() * (1.0 / scale)).clamp(-128, 127).to(torch.int8)
    return q, scale


def quantize_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in) float -> q (out, in) int8 and scale (out, 1) float32, one scale per output
    row: w ≈ q * scale, each weight off by at most scale / 2 of its row."""
    w = _check_weight(w)
    return _quantize(w, w.detach().abs().amax(dim=1, keepdim=True))


def quantize_per_tensor(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in) -> q (out, in) int8 and one scale (1, 1) for the whole matrix: a single large
    weight then coarsens every row."""
    w = _check_weight(w)
    return _quantize(w, w.detach().abs().amax().reshape(1, 1))


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (out, in) int8, scale (out, 1) or (1, 1) -> float32 weights q * scale."""
    if q.dtype != torch.int8:
        raise TypeError(f"q must be int8, got {q.dtype}")
    return q.float() * scale


class Int8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 with one float32 scale per output row.

    forward(x (..., in)) -> (..., out) = x @ (q * scale)^T + bias, dequantizing on the fly:
    the weight takes a quarter of the bytes, the arithmetic stays in x's dtype."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.in_features, self.out_features = q.shape[1], q.shape[0]

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        return cls(*quantize_per_channel(linear.weight), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, (self.q.to(x.dtype) * self.scale.to(x.dtype)), self.bias)


def quantize_model(model: nn.Module) -> nn.Module:
    """A copy of model with every nn.Linear replaced by an Int8Linear (a GPT's tied output
    layer included: it gets its own int8 copy, the embedding table stays float)."""
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ValueError("model has no nn.Linear to quantize")
    small = copy.deepcopy(model)
    for module in list(small.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear.from_linear(child))
    return small.eval()


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights of every linear layer (nn.Linear, Int8Linear: int8 plus scales;
    torchao's quantized weights: their int8 data plus scales). Biases and tables excluded."""
    total = 0
    for m in model.modules():
        if isinstance(m, Int8Linear):
            total += m.q.nbytes + m.scale.nbytes
        elif isinstance(m, nn.Linear):
            w = m.weight
            parts = [w.qdata, w.scale] if hasattr(w, "qdata") else [w]  # torchao's Int8Tensor
            total += sum(p.numel() * p.element_size() for p in parts)
    return total


def torchao_int8(model: nn.Module) -> nn.Module:
    """A copy of model quantized by torchao's int8 weight-only recipe (`Int8WeightOnlyConfig`,
    per row), the maintained library path. torchao logs, at import, that its CUDA kernels do
    not load on this machine, with the absolute paths of its files, and torch warns about one
    of its types: those import-time messages are silenced; errors still show."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    small = copy.deepcopy(model)
    if getattr(small, "head", None) is not None and getattr(small, "tok_emb", None) is not None:
        small.head.weight = nn.Parameter(small.head.weight.detach().clone())  # untie: own copy
    quantize_(small, Int8WeightOnlyConfig())
    return small.eval()


@torch.no_grad()
def val_loss(model: nn.Module, val: torch.Tensor, block_size: int, windows_: int = 0) -> float:
    """Mean loss (nats per token) on the validation ids val (N,): windows_=0 the whole split
    (every token after the first predicted once, `train_data.eval_plan`), else that many
    evenly spaced windows."""
    starts, mask = eval_plan(len(val), block_size, int_at_least(windows_, "windows_", 0))
    total, count = 0.0, 0
    model.eval()
    for i in range(0, len(starts), 64):
        x, y = windows(val, starts[i : i + 64], block_size)
        y = y.masked_fill(~mask[i : i + 64], -100)
        logits = model(x).float()
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += int(mask[i : i + 64].sum())
    return total / count


# ============================================================================ speculative decoding


@dataclass
class SpeculativeStats:
    """What one speculative run did: draft tokens proposed and accepted, verification passes."""

    proposed: int = 0
    accepted: int = 0
    target_passes: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def accept_prefix(draft_tokens: torch.Tensor, target_tokens: torch.Tensor) -> tuple[int, int]:
    """Greedy verification: draft_tokens (k,) proposed, target_tokens (k + 1,) the target's
    greedy choice after the context and after each draft token. Returns (n accepted, next
    token): the draft is kept up to its first disagreement, then the target's own token there
    (or, all k accepted, its token after the last: every pass gains at least one token)."""
    k = draft_tokens.shape[0]
    if target_tokens.shape[0] != k + 1:
        raise ValueError(
            f"target_tokens must hold k + 1 = {k + 1} tokens, got {target_tokens.shape[0]}"
        )
    agree = (draft_tokens == target_tokens[:k]).long()
    n = int(agree.cumprod(0).sum())  # the length of the agreeing prefix
    return n, int(target_tokens[n])


@torch.no_grad()
def speculative_generate(
    target: nn.Module, draft: nn.Module, ids: torch.Tensor, max_new_tokens: int, k: int = 4
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Greedy speculative decoding (Leviathan et al. 2023; Chen et al. 2023): the draft proposes
    k tokens one by one, the target scores them all in one pass (with its cache), the agreeing
    prefix is kept plus the target's own next token, and both caches are cut back to what was
    kept. The output equals `generate(target, ids, max_new_tokens, do_sample=False)`.

    ids (1, T); prompt + max_new_tokens + k must fit both models' contexts (no window moves).
    Returns (ids (1, T + max_new_tokens), SpeculativeStats)."""
    k, max_new_tokens = positive_int(k, "k"), int_at_least(max_new_tokens, "max_new_tokens", 0)
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"ids must be one sequence (1, T), got shape {tuple(ids.shape)}")
    if draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(
            f"the draft's vocabulary ({draft.config.vocab_size} tokens) is not the target's "
            f"({target.config.vocab_size}): its tokens would mean other things"
        )
    room = min(target.config.block_size, draft.config.block_size)
    if ids.shape[1] + max_new_tokens + k > room:
        raise ValueError(
            f"prompt {ids.shape[1]} + max_new_tokens {max_new_tokens} + k {k} is over the "
            f"context of {room}"
        )
    target.eval(), draft.eval()
    t_cache, d_cache, stats = target.new_cache(1), draft.new_cache(1), SpeculativeStats()
    end = ids.shape[1] + max_new_tokens
    # the target reads the prompt but its last token; every pass then starts at that token
    if ids.shape[1] > 1:
        target(ids[:, :-1], cache=t_cache)
        draft(ids[:, :-1], cache=d_cache)
    while ids.shape[1] < end:
        n_draft = min(k, end - ids.shape[1] - 1)  # the pass itself always adds one token
        proposal, feed = ids[:, -1:], ids[:, d_cache.length :]  # the draft may be one behind
        for _ in range(n_draft):
            nxt = greedy(draft(feed, cache=d_cache)[:, -1, :])
            proposal, feed = torch.cat([proposal, nxt], dim=1), nxt
        logits = target(proposal, cache=t_cache)[0]  # (1 + n_draft, V): one pass for all
        stats.target_passes += 1
        n, token = accept_prefix(proposal[0, 1:], logits.argmax(dim=-1))
        stats.proposed, stats.accepted = stats.proposed + n_draft, stats.accepted + n
        settled = ids.shape[1] + n  # positions whose tokens stay: the old ones, n drafted
        ids = torch.cat([ids, proposal[:, 1 : 1 + n], torch.tensor([[token]])], dim=1)
        t_cache.crop(settled)
        d_cache.crop(min(d_cache.length, settled))
    return ids, stats


# ============================================================================ distillation


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals and Dean 2015): logits (B, T, V) each, targets
    (B, T). alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) · the
    cross-entropy with the data's next tokens, both averaged over the B·T positions. The T²
    keeps the soft term's gradients the size of the hard term's; alpha=0 is the data alone."""
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 3:
        raise ValueError(
            f"student and teacher logits must both be (B, T, V), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if targets.shape != student_logits.shape[:2]:
        raise ValueError(
            f"targets must be {tuple(student_logits.shape[:2])}, got {tuple(targets.shape)}"
        )
    alpha = fraction(alpha, "alpha")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or temperature <= 0
    ):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    hard = F.cross_entropy(student_logits.flatten(0, 1), targets.flatten())
    if alpha == 0:
        return hard
    s = F.log_softmax(student_logits.flatten(0, 1).float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.flatten(0, 1).float() / temperature, dim=-1)
    soft = F.kl_div(s, t, log_target=True, reduction="batchmean")  # KL(teacher ‖ student)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


@torch.no_grad()
def soft_targets(teacher: nn.Module, x: torch.Tensor, rows: int = 64) -> torch.Tensor:
    """The teacher's logits (N, T, V) for windows x (N, T), computed once, `rows` at a time."""
    teacher.eval()
    return torch.cat([teacher(x[i : i + rows]).float() for i in range(0, len(x), rows)])


def train_student(
    student: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    teacher_logits: torch.Tensor | None = None,
    batch_size: int = 32,
    lr: float = 1e-2,
    temperature: float = 2.0,
    alpha: float = 0.5,
    seed: int = 0,
) -> list[float]:
    """Train student (a GPT) on the windows x (N, T) and next tokens y (N, T) for `steps` AdamW
    steps (cosine decay to lr/10), batch_size rows drawn per step (seeded: the same rows for
    every student of a seed): with teacher_logits (N, T, V, from `soft_targets`) on
    `distillation_loss`, without on the data alone. Returns the loss of every step."""
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be (N, T), got {tuple(x.shape)} and {tuple(y.shape)}")
    if teacher_logits is not None and teacher_logits.shape[:2] != x.shape:
        raise ValueError(
            f"teacher_logits must be {tuple(x.shape)} + (V,), got {tuple(teacher_logits.shape)}"
        )
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    cosine = lambda i: 0.1 + 0.45 * (1 + math.cos(math.pi * i / steps))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    g = torch.Generator().manual_seed(seed)
    student.train()
    losses = []
    for _ in range(steps):
        rows = torch.randint(0, len(x), (batch_size,), generator=g)
        logits = student(x[rows])
        if teacher_logits is None:
            loss = distillation_loss(logits, logits.detach(), y[rows], temperature, 0.0)
        else:
            loss = distillation_loss(logits, teacher_logits[rows], y[rows], temperature, alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    student.eval()
    return losses
