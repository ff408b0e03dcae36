"""Notebook 08's exercises: the training loop, top-k and top-p filtering, perplexity.

`train_steps(fn)` checks a learner's training loop, fn(model, batches, config) -> one loss per
step, bit for bit (rtol=0, atol=0): the losses of every step and every final weight of a small
GPT. The reference, `_loop`, is the course trainer's step (`course_lib.train`: its
`learning_rate`, `configure_optimizer` and `optimizer_step`) written out: set the step's learning
rate, forward, mean cross-entropy, zero the gradients, backward, clip, AdamW step with weight
decay on the matrices only. The key does not import the trainer (only the trainer's own modules
do); tests/test_train.py hands the trainer's own functions to `train_steps` as a learner's loop
and checks that they pass every case, and that a run of `train()` is those functions, step by
step. The named mistakes are `_loop` with one realistic bug each; the last three are the same
maths in another order, which rounds differently in the last bits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import traceback
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from course_lib import data as course_data
from course_lib import generate, metrics, optim, tokenizers, transformer
from course_lib.check import Verdict, case, check, mistake

# --------------------------------------------------------------------------- the training loop


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The fields of a `TrainConfig` that a training step reads, under the same names, so that
    a loop written for this config runs on a TrainConfig too. The cases pass these as keyword
    arguments, so that a verdict shows the learner every value (a TrainConfig's repr is cut off
    after its first few fields)."""

    lr: float
    min_lr: float
    warmup_steps: int
    max_steps: int  # the schedule's horizon: the cosine reaches min_lr here
    weight_decay: float
    beta1: float
    beta2: float
    grad_clip: float  # 0 turns clipping off


# The small GPT every case trains: the trainer's model (`train_config.model_config`: fast path,
# GPT-2 initialisation, biases, learned positions, no dropout) at a size that trains in ms.
MODEL = dict(block_size=16, d_model=32, n_heads=2, n_layers=1, d_ff=64)
BATCH = 8
TEXT_CHARS = 20_000


@functools.lru_cache(maxsize=1)
def _text_ids() -> tuple[int, torch.Tensor]:
    """(vocabulary size, ids (N,)) of the first TEXT_CHARS characters of the training split."""
    text = course_data.load_corpus("train", "small")[:TEXT_CHARS]
    tok = tokenizers.CharTokenizer.train(text)
    return tok.vocab_size, torch.tensor(tok.encode(text), dtype=torch.long)


def _model_and_batches(seed: int, steps: int) -> tuple[transformer.GPT, list]:
    """A GPT drawn from torch.manual_seed(seed), as the trainer draws it, in training mode, and
    `steps` batches [(x (BATCH, T), y (BATCH, T)), ...] of random training windows (a local
    generator: the global random state is left as it was)."""
    vocab, ids = _text_ids()
    cfg = transformer.GPTConfig(vocab_size=vocab, fast=True, init_std=0.02, **MODEL)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformer.GPT(cfg).train()
    g = torch.Generator().manual_seed(seed + 1)
    t = MODEL["block_size"]
    batches = []
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - t - 1, (BATCH,), generator=g)  # (BATCH,)
        w = ids[starts[:, None] + torch.arange(t + 1)]  # (BATCH, T + 1)
        batches.append((w[:, :-1], w[:, 1:]))
    return model, batches


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread while a loop runs (the sums in one order), handed back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Trained(NamedTuple):
    """What a case compares: each step's loss (steps,) float64, the final weights (P,) float32."""

    losses: torch.Tensor
    weights: torch.Tensor

    def __repr__(self) -> str:
        shown = ", ".join(f"{v:.6g}" for v in self.losses.tolist()[:4])
        more = ", ..." if len(self.losses) > 4 else ""
        return f"losses [{shown}{more}]; {self.weights.numel():,d} final weights"


def _trained(losses, model: transformer.GPT, steps: int) -> Trained:
    if not isinstance(losses, list | tuple) or len(losses) != steps:
        got = f"a {type(losses).__name__}" + (
            f" of {len(losses)}" if isinstance(losses, list | tuple) else ""
        )
        raise TypeError(f"return a list of {steps} losses, one per step (loss.item()); got {got}")
    values = []
    for v in losses:
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"each loss must be a number (loss.item()), got {type(v).__name__}")
        values.append(float(v))
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])  # (P,)
    return Trained(torch.tensor(values, dtype=torch.float64), weights)


class _OnLoop:
    """Runs a case on a training loop: builds the model and batches from the seed, calls the
    loop, returns what it trained. An object, not a function, so that a verdict quotes the
    learner's line, never a line of this key."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, *, seed: int, **fields) -> Trained:
        config = StepConfig(**fields)
        model, batches = _model_and_batches(seed, config.max_steps)
        with _one_thread(), torch.random.fork_rng(devices=[]):
            try:
                losses = self.fn(model, batches, config)
            except NotImplementedError:
                raise  # the stub: check() turns it into "not yet"
            except Exception as e:
                where = _learner_frame(self.fn, e)
                if where:
                    e.args = (f"{e} ({where})",)
                raise
        return _trained(losses, model, len(batches))


def _learner_frame(fn: Callable, error: BaseException) -> str:
    """'line 4 of train_steps: `loss.backward()`' for the learner's innermost line, or ''."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    frames = traceback.extract_tb(error.__traceback__)
    for f in reversed(frames):
        if f.filename == code.co_filename and f.name == code.co_name and f.line:
            return (
                f"line {f.lineno - code.co_firstlineno + 1} of {code.co_name}: `{f.line.strip()}`"
            )
    return ""


def _loop(
    model,
    batches,
    config,
    *,
    zero: bool = True,
    clip: str = "before the step",
    schedule: str = "lr_at(step)",
    decay: str = "matrices",
    betas: str = "config",
    loss_sum: bool = False,
    ce: str = "flat",
    fused: bool = False,
    clip_order: str = "model",
) -> list[float]:
    """The trainer's step, in order, for every batch; the keywords switch in one bug each."""
    params = list(model.parameters())
    if decay == "matrices":
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": config.weight_decay}]
    kwargs = {"betas": (config.beta1, config.beta2)} if betas == "config" else {}
    if fused:
        kwargs["fused"] = True
    opt = torch.optim.AdamW(groups, lr=config.lr, **kwargs)
    losses = []
    for step, (x, y) in enumerate(batches):
        lr = _step_lr(step, config, schedule)
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr
        logits = model(x)  # (B, T, V)
        if ce == "flat":
            reduction = "sum" if loss_sum else "mean"
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction=reduction)
        else:
            loss = F.cross_entropy(logits.transpose(1, 2), y)  # (B, V, T) against (B, T)
        if zero:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        clipped = [p for g in opt.param_groups for p in g["params"]]
        clipped = params if clip_order == "model" else clipped
        if clip == "before the step" and config.grad_clip:
            torch.nn.utils.clip_grad_norm_(clipped, config.grad_clip)
        if clip == "always":
            torch.nn.utils.clip_grad_norm_(clipped, config.grad_clip)
        opt.step()
        if clip == "after the step" and config.grad_clip:
            torch.nn.utils.clip_grad_norm_(clipped, config.grad_clip)
        losses.append(loss.item())
    return losses


def _step_lr(step: int, config, schedule: str) -> float | None:
    """The learning rate a loop sets before step `step` (None: it sets none)."""
    if schedule == "constant":
        return None
    if schedule == "set_lr":  # notebook 08's own schedule: 10% warm-up, down to a tenth
        total = config.max_steps
        return optim.lr_at(
            step,
            base_lr=config.lr,
            warmup_steps=max(1, total // 10),
            total_steps=total,
            min_lr=config.lr / 10,
        )
    return optim.lr_at(
        step + 1 if schedule == "lr_at(step + 1)" else step,
        base_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.max_steps,
        min_lr=config.min_lr,
    )


def _wrong(**bug) -> _OnLoop:
    return _OnLoop(functools.partial(_loop, **bug))


def _settings(seed: int, **changes) -> dict:
    base = dict(
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=2,
        max_steps=6,
        weight_decay=0.1,
        beta1=0.9,
        beta2=0.99,
        grad_clip=1.0,
    )
    return dict(seed=seed, **{**base, **changes})


def train_steps(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(model, batches [(x (B, T), y (B, T)), ...], config: StepConfig) -> [loss per step],
    against the trainer's step on the same GPT and batches: every loss and every final weight
    equal bit for bit."""
    return check(
        _OnLoop(fn),
        reference=_OnLoop(_loop),
        cases=[
            case(label="6 steps: warm-up, cosine, clipping at 1", **_settings(1337)),
            case(
                label="another seed, rate, decay and beta2; strong clipping",
                **_settings(7, lr=1e-2, min_lr=1e-3, weight_decay=0.2, beta2=0.95, grad_clip=0.05),
            ),
            case(
                label="clipping off (grad_clip=0), no warm-up",
                **_settings(3, warmup_steps=0, max_steps=4, grad_clip=0.0),
            ),
        ],
        mistakes=[
            mistake(
                "gradients never zeroed",
                "backward() adds into each .grad: zero the gradients every step (before "
                "backward, or right after the step), or each step uses the sum of all so far",
                _wrong(zero=False),
            ),
            mistake(
                "clipping after the step",
                "clip between backward() and the optimizer step: the step uses the gradients "
                "as they are when it runs, so clipping them afterwards changes nothing it did",
                _wrong(clip="after the step"),
            ),
            mistake(
                "a constant learning rate",
                "set every parameter group's lr to optim.lr_at(step, ...) before each step: "
                "without that there is no warm-up and no decay",
                _wrong(schedule="constant"),
            ),
            mistake(
                "the schedule one step late",
                "steps count from 0: the first step uses lr_at(0, ...), the warm-up's smallest "
                "rate, as the trainer's step counter starts at 0",
                _wrong(schedule="lr_at(step + 1)"),
            ),
            mistake(
                "this notebook's set_lr schedule",
                "take the schedule from the config: warmup_steps, max_steps (the horizon) and "
                "min_lr, as the trainer does",
                _wrong(schedule="set_lr"),
            ),
            mistake(
                "weight decay on every parameter",
                "two parameter groups: the matrices (p.dim() >= 2) decay by "
                "config.weight_decay, biases and layer-norm gains by 0",
                _wrong(decay="all"),
            ),
            mistake(
                "AdamW's default betas",
                "pass betas=(config.beta1, config.beta2): the trainer's beta2 is not "
                "PyTorch's default 0.999",
                _wrong(betas="default"),
            ),
            mistake(
                "a summed loss",
                "the loss is the mean over all B * T positions (reduction='mean'): a sum "
                "scales the gradient by B * T, so clipping cuts it differently",
                _wrong(loss_sum=True),
            ),
            mistake(
                "clipping with grad_clip=0",
                "grad_clip=0 turns clipping off: clip_grad_norm_(..., 0) would scale every "
                "gradient to 0",
                _wrong(clip="always"),
            ),
            mistake(
                "cross-entropy on (B, V, T) logits",
                "the same loss, summed in another order, so the weights differ in their last "
                "bits: flatten the logits to (B * T, V) and the targets to (B * T,), as the "
                "trainer's lm_loss does",
                _wrong(ce="transposed"),
            ),
            mistake(
                "a fused AdamW",
                "the same update, computed in another order: build the plain "
                "torch.optim.AdamW (no fused=True); the check compares bit for bit",
                _wrong(fused=True),
            ),
            mistake(
                "clipping the parameters in another order",
                "the norm is summed in the order of the list you pass: clip "
                "model.parameters(), in the model's own order, as the trainer does",
                _wrong(clip_order="groups"),
            ),
        ],
        name=getattr(fn, "__name__", None),
        rtol=0,
        atol=0,
        quiet=quiet,
    )


# --------------------------------------------------------------------------- decoding filters


def _logits(b: int, v: int, seed: int) -> torch.Tensor:
    """(b, v) standard-normal logits from a local generator."""
    return torch.randn(b, v, generator=torch.Generator().manual_seed(seed))


def _targets(n: int, v: int, seed: int) -> torch.Tensor:
    """(n,) token ids in [0, v) from a local generator."""
    return torch.randint(0, v, (n,), generator=torch.Generator().manual_seed(seed))


def top_k_filter(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(logits (B, V), k) -> (B, V), entries below each row's k-th largest set to -inf."""
    return check(
        fn,
        reference=generate.top_k_filter,
        cases=[
            case(torch.tensor([[1.0, 3.0, 2.0, 0.5]]), 2, label="one row, k=2"),
            case(_logits(3, 11, 0), 1, label="k=1 is greedy"),
            case(_logits(2, 7, 1), 7, label="k = vocabulary keeps everything"),
            case(_logits(4, 50, 2), 5, label="seeded random, 4 rows"),
        ],
        mistakes=[
            mistake(
                "the k smallest kept",
                "keep the LARGEST k logits",
                lambda z, k: z.masked_fill(
                    z > torch.topk(z, k, largest=False).values[:, -1:], float("-inf")
                ),
            ),
            mistake(
                "dropped tokens set to 0",
                "a dropped token needs -inf, not 0 (exp(0) = 1)",
                lambda z, k: z.masked_fill(z < torch.topk(z, k).values[:, -1:], 0.0),
            ),
            mistake(
                "the threshold of the whole batch",
                "take the k-th largest of EACH row",
                lambda z, k: z.masked_fill(
                    z < torch.topk(z.flatten(), k).values[-1], float("-inf")
                ),
            ),
        ],
        quiet=quiet,
    )


def _mass_including(z: torch.Tensor, p: float) -> torch.Tensor:
    """Keeps tokens while the mass INCLUDING them is below p."""
    s, o = torch.sort(z, dim=-1, descending=True)
    cum = torch.cumsum(torch.softmax(s, dim=-1), dim=-1)
    return z.masked_fill(
        torch.zeros_like(cum, dtype=torch.bool).scatter(-1, o, cum >= p), float("-inf")
    )


def _unsorted(z: torch.Tensor, p: float) -> torch.Tensor:
    """The cumulative sum in vocabulary order, not by probability."""
    pr = torch.softmax(z, dim=-1)
    return z.masked_fill(torch.cumsum(pr, dim=-1) - pr >= p, float("-inf"))


def top_p_filter(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(logits (B, V), p) -> (B, V), outside each row's nucleus set to -inf."""
    return check(
        fn,
        reference=generate.top_p_filter,
        cases=[
            case(torch.log(torch.tensor([[0.1, 0.5, 0.15, 0.25]])), 0.7, label="one row, p=0.7"),
            case(_logits(3, 11, 3), 1.0, label="p=1 keeps everything"),
            case(_logits(2, 9, 4), 1e-4, label="tiny p keeps the top token"),
            case(_logits(4, 40, 5) * 3, 0.9, label="seeded random, p=0.9"),
        ],
        mistakes=[
            mistake(
                "the mass including the token",
                "compare the mass BEFORE each token with p, so the token that crosses p is kept",
                _mass_including,
            ),
            mistake("no sorting", "sort by probability before the cumulative sum", _unsorted),
        ],
        quiet=quiet,
    )


def perplexity(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(logits (N, V), targets (N,)) -> float, exp of the mean negative log-probability."""
    return check(
        fn,
        reference=metrics.perplexity,
        cases=[
            case(torch.zeros(4, 10), torch.tensor([0, 3, 9, 5]), label="uniform: perplexity = V"),
            case(torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([1]), label="one token"),
            case(_logits(7, 13, 6), _targets(7, 13, 7), label="seeded random"),
            case(_logits(50, 80, 8) * 4, _targets(50, 80, 9), label="peaked, 50 tokens"),
        ],
        mistakes=[
            mistake(
                "the mean loss, not its exp",
                "perplexity is exp(mean cross-entropy)",
                lambda z, t: float(F.cross_entropy(z, t)),
            ),
            mistake(
                "exp of the summed loss",
                "average over tokens before exp",
                lambda z, t: math.exp(float(F.cross_entropy(z, t, reduction="sum"))),
            ),
            mistake(
                "base 2",
                "use natural logs: exp, not 2 **",
                lambda z, t: 2 ** float(F.cross_entropy(z, t)),
            ),
        ],
        quiet=quiet,
    )
