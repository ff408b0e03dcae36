"""The course trainer: one config, three presets, any device, checkpoints you can resume.

    python -m course_lib.train --preset cpu --out runs/cpu-1          # the shipped corpus
    python -m course_lib.train --preset gpu --data input.txt --out runs/gpu-1
    python -m course_lib.train --preset gpu --out runs/gpu-1 --resume  # continue after a stop
    torchrun --standalone --nproc_per_node=N -m course_lib.train --preset gpu --out runs/ddp

From a notebook: `result = train(preset("ci"), out_dir)`. A run writes into its directory:

    metrics.jsonl   one JSON object per line: {"kind": "train" | "eval", "step", ...}
    ckpt.pt         the last checkpoint (model, optimizer, scaler, RNG states, step, config)
    loss.png        train and validation loss against step (when matplotlib is installed)
    run_card.json   config, device, versions, wall time, tokens/s, MFU, best val loss, samples
    run_card.md     the same, for people

The model is the course's own GPT (`course_lib.transformer`) on its fast path
(`F.scaled_dot_product_attention` with the causal kernel, `F.layer_norm`), trained with
`torch.optim.AdamW` (fused on CUDA), linear warm-up + cosine decay (`course_lib.optim.lr_at`),
gradient clipping and gradient accumulation. `course_lib.device` picks the device, the autocast
dtype (bfloat16 where the GPU has it; float16 with a gradient scaler where it does not; float32
on the CPU), torch.compile and TF32.

Data order: the windows of optimizer step s are drawn from a generator seeded by (seed, s), so
they depend on nothing else: not on earlier steps, not on how many processes share the work.
Under torchrun each rank takes its own slice of the same global batch, so a resumed run, or a
run on another number of processes, sees the same samples in the same order.

Import needs only torch and NumPy; tqdm (progress bar) and matplotlib (loss plot) are used when
installed, so the module also runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import data as course_data
from course_lib import device as course_device
from course_lib import generate as course_generate
from course_lib import optim as course_optim
from course_lib import tokenizers, transformer
from course_lib.checkpoints import (  # so train.CheckpointError etc. keep working
    CheckpointError,
    load_checkpoint,
    model_payload,
    restore_config,
    save_checkpoint,
)
from course_lib.validate import int_at_least, positive_int

CHECKPOINT_NAME = "ckpt.pt"
METRICS_NAME = "metrics.jsonl"


# ============================================================================ configuration


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. Sizes are per optimizer step, all processes together."""

    # data: a UTF-8 text file (its last `val_fraction` is validation), or the shipped corpus
    data: str | None = None
    corpus: str = "small"
    val_fraction: float = 0.1
    # model: the course GPT, character level
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    d_ff: int = 512
    block_size: int = 64
    dropout: float = 0.0
    init_std: float = 0.02
    bias: bool = True  # False: no biases in linear layers or layer norms (nanoGPT's default)
    position: str = "learned"  # or "rope": rotary position embeddings instead of a table
    # optimisation
    batch_size: int = 12  # sequences per optimizer step (all ranks and micro-steps together)
    grad_accum: int = 1  # micro-steps per optimizer step on each rank
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    # evaluation, logging, checkpoints, samples
    eval_every: int = 250
    eval_windows: int = 0  # periodic evaluations: 0 the whole validation split, else N windows
    final_eval_windows: int = 0  # the evaluation at max_steps, the same way (0: whole split)
    log_every: int = 10
    checkpoint_every: int = 0  # 0: at every evaluation and at the end
    sample_tokens: int = 200
    sample_prompt: str = "\n"
    # runtime
    seed: int = 1337
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    compile: str = "auto"  # auto, 0, 1
    dtype: str = "auto"  # auto (the device plan's), float32, bfloat16, float16 (CUDA)
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default

    def __post_init__(self):
        # One rule (course_lib.validate): a wrong type is a TypeError, a wrong value a ValueError.
        def positive(name):
            object.__setattr__(self, name, positive_int(getattr(self, name), f"TrainConfig.{name}"))

        def non_negative_int(name):
            value = int_at_least(getattr(self, name), f"TrainConfig.{name}", 0)
            object.__setattr__(self, name, value)

        def number(name, low, high, low_open=False, high_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError(
                    f"TrainConfig.{name} must be a number, got {type(v).__name__} {v!r}"
                )
            if not math.isfinite(v):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {v!r}")
            bad_low = v <= low if low_open else v < low
            bad_high = v >= high if high_open else v > high
            if bad_low or bad_high:
                lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
                raise ValueError(f"TrainConfig.{name} must be in {lo}{low}, {high}{hi}, got {v}")

        for name in (
            "n_layers",
            "n_heads",
            "d_model",
            "d_ff",
            "block_size",
            "batch_size",
            "grad_accum",
            "max_steps",
            "eval_every",
            "log_every",
        ):
            positive(name)
        for name in (
            "seed",
            "warmup_steps",
            "eval_windows",
            "final_eval_windows",
            "checkpoint_every",
            "sample_tokens",
            "threads",
        ):
            non_negative_int(name)
        if self.position not in ("learned", "rope"):
            raise ValueError(
                f"TrainConfig.position must be 'learned' or 'rope', got {self.position!r}"
            )
        if not isinstance(self.bias, bool):
            raise TypeError(f"TrainConfig.bias must be True or False, got {self.bias!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"TrainConfig.d_model ({self.d_model}) must be divisible by TrainConfig.n_heads "
                f"({self.n_heads})"
            )
        number("lr", 0.0, math.inf, low_open=True)
        number("min_lr", 0.0, self.lr)
        number("init_std", 0.0, math.inf, low_open=True)
        number("dropout", 0.0, 1.0, high_open=True)
        number("val_fraction", 0.0, 1.0, low_open=True, high_open=True)
        number("weight_decay", 0.0, math.inf)
        number("beta1", 0.0, 1.0, high_open=True)
        number("beta2", 0.0, 1.0, high_open=True)
        number("grad_clip", 0.0, math.inf)
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"TrainConfig.warmup_steps ({self.warmup_steps}) must not exceed "
                f"TrainConfig.max_steps ({self.max_steps})"
            )
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"TrainConfig.batch_size ({self.batch_size}) must be divisible by "
                f"TrainConfig.grad_accum ({self.grad_accum})"
            )
        if self.corpus not in course_data.CORPORA:
            raise ValueError(
                f"TrainConfig.corpus must be one of {course_data.CORPORA}, got {self.corpus!r}"
            )
        if self.data is not None and not isinstance(self.data, str):
            raise TypeError(f"TrainConfig.data must be a path string or None, got {self.data!r}")
        course_device._parse_device(self.device, "TrainConfig.device")
        course_device._parse_compile(self.compile, "TrainConfig.compile")
        if self.dtype not in course_device.DTYPE_CHOICES:
            choices = course_device.DTYPE_CHOICES
            raise ValueError(f"TrainConfig.dtype must be one of {choices}, got {self.dtype!r}")
        if not isinstance(self.sample_prompt, str) or not self.sample_prompt:
            raise ValueError("TrainConfig.sample_prompt must be a non-empty string")

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (checked again)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"TrainConfig has no field(s) {unknown}")
        return dataclasses.replace(self, **changes)


# The presets. `ci`: seconds on one CPU thread, every feature exercised. `cpu`: a few minutes on
# a laptop, the configuration the benchmark measures. `gpu`: one modern GPU, the full run.
PRESETS: dict[str, TrainConfig] = {
    "ci": TrainConfig(
        n_layers=2,
        n_heads=4,
        d_model=64,
        d_ff=256,
        block_size=64,
        batch_size=16,
        max_steps=60,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=10,
        eval_every=20,
        eval_windows=64,
        final_eval_windows=64,
        log_every=1,
        sample_tokens=80,
        compile="0",
    ),
    # measured against nanoGPT's CPU recipe in bench/RESULTS.md: the same width and depth, a
    # higher learning rate with beta2 0.95 and no weight decay, rotary positions, no biases,
    # bfloat16 matmuls where the CPU has them, 800 steps of 16 x 64 tokens
    "cpu": TrainConfig(
        n_layers=4,
        n_heads=4,
        d_model=128,
        d_ff=512,
        block_size=64,
        bias=False,
        position="rope",
        batch_size=16,
        max_steps=800,
        lr=6e-3,
        min_lr=6e-4,
        warmup_steps=30,
        weight_decay=0.0,
        beta2=0.95,
        eval_every=400,
        eval_windows=200,
        log_every=10,
        dtype="fast",
    ),
    "gpu": TrainConfig(
        corpus="full",
        bias=False,
        n_layers=6,
        n_heads=6,
        d_model=384,
        d_ff=1536,
        block_size=256,
        dropout=0.2,
        batch_size=64,
        max_steps=5000,
        lr=1e-3,
        min_lr=1e-4,
        warmup_steps=100,
        eval_every=250,
        log_every=50,
        sample_tokens=500,
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A named preset ('ci', 'cpu', 'gpu'), with some fields changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; the presets are {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


def parse_override(text: str) -> tuple[str, object]:
    """'key=value' -> (key, value typed like TrainConfig's field: int, float, bool, str, None)."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    types = {f.name: f.type for f in fields(TrainConfig)}
    if key not in types:
        raise ValueError(f"--set {key}: TrainConfig has no such field; fields: {sorted(types)}")
    kind = str(types[key])
    if "None" in kind and raw.lower() in ("none", ""):
        return key, None
    if kind == "bool":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--set {key}={raw!r}: expected true or false")
        return key, raw.lower() in ("true", "1")
    try:
        if kind.startswith("int"):
            return key, int(raw)
        if kind.startswith("float"):
            return key, float(raw)
    except ValueError:
        raise ValueError(f"--set {key}={raw!r}: expected a {kind.split()[0]}") from None
    return key, raw  # verbatim: sample_prompt=ROMÉO: stays ROMÉO:, a backslash stays one


# ============================================================================ data


@dataclass
class Data:
    tokenizer: tokenizers.CharTokenizer
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,)
    source: str


def load_data(config: TrainConfig) -> Data:
    """Character-level ids of the training and validation text.

    With `config.data` (a text file): the last `val_fraction` of the characters is validation,
    and the vocabulary is every character of the file. Without: the shipped corpus's train and
    val files (checksums verified), the vocabulary taken from train (unseen characters map to
    <unk>)."""
    if config.data is not None:
        path = Path(config.data)
        if not path.is_file():
            raise FileNotFoundError(f"TrainConfig.data: no such file {str(path)!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"TrainConfig.data: {path} is not UTF-8 text (byte {e.start} is "
                f"{e.object[e.start : e.start + 1]!r}); the trainer reads UTF-8 text files: "
                "convert it first, e.g. iconv -f latin1 -t utf-8"
            ) from None
        cut = int(len(text) * (1 - config.val_fraction))
        train_text, val_text = text[:cut], text[cut:]
        tok = tokenizers.CharTokenizer.train(text)
        source = f"{path.name} ({len(text):,} characters; last {config.val_fraction:.0%} is val)"
    else:
        train_text = course_data.load_corpus("train", config.corpus)
        val_text = course_data.load_corpus("val", config.corpus)
        tok = tokenizers.CharTokenizer.train(train_text)
        source = f"shipped corpus {config.corpus!r} (data/manifest.json)"
    as_ids = lambda t: torch.tensor(tok.encode(t), dtype=torch.long)  # noqa: E731
    return Data(tok, as_ids(train_text), as_ids(val_text), source)


def step_starts(seed: int, step: int, n_tokens: int, block_size: int, batch_size: int):
    """(batch_size,) window starts of optimizer step `step`: a function of (seed, step) only."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)
    return torch.randint(0, n_tokens - block_size, (batch_size,), generator=g)


def windows(ids: torch.Tensor, starts: torch.Tensor, block_size: int):
    """Inputs x (B, T) and next-token targets y (B, T) of the windows beginning at `starts`."""
    idx = starts[:, None] + torch.arange(block_size + 1)  # (B, T + 1)
    w = ids[idx]
    return w[:, :-1], w[:, 1:]


def rank_rows(batch_size: int, world_size: int, rank: int, grad_accum: int) -> list[slice]:
    """The rows of the global batch that rank `rank` processes, one slice per micro-step."""
    if batch_size % (world_size * grad_accum):
        raise ValueError(
            f"TrainConfig.batch_size ({batch_size}) must be divisible by world size x grad_accum "
            f"({world_size} x {grad_accum}): every micro-batch must have the same size"
        )
    per_rank = batch_size // world_size
    micro = per_rank // grad_accum
    first = rank * per_rank
    return [slice(first + m * micro, first + (m + 1) * micro) for m in range(grad_accum)]


def eval_plan(n_val: int, block_size: int, count: int):
    """Validation windows: starts (W,) and a (W, T) mask of the targets that count.

    count=0 covers the whole split: non-overlapping windows, plus one final window ending at
    the last character whose already-covered targets are masked out, so every validation
    character after the first is predicted exactly once. count>0: that many evenly spaced
    windows (fixed across the run), every target counted."""
    if n_val < block_size + 1:
        raise ValueError(
            f"TrainConfig.block_size ({block_size}) is longer than the validation split "
            f"({n_val} tokens); use a smaller block_size or more validation text"
        )
    if count:
        starts = torch.linspace(0, n_val - block_size - 1, count).round().long()
        return starts, torch.ones(count, block_size, dtype=torch.bool)
    starts = list(range(0, n_val - block_size, block_size))
    mask = torch.ones(len(starts), block_size, dtype=torch.bool)
    covered = starts[-1] + block_size  # targets 1 .. covered are predicted
    if covered < n_val - 1:
        last = n_val - 1 - block_size
        extra = torch.zeros(1, block_size, dtype=torch.bool)
        extra[0, covered - last :] = True
        starts.append(last)
        mask = torch.cat([mask, extra])
    return torch.tensor(starts), mask


# ============================================================================ model and cost


def model_config(config: TrainConfig, vocab_size: int) -> transformer.GPTConfig:
    return transformer.GPTConfig(
        vocab_size=vocab_size,
        block_size=config.block_size,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        d_ff=config.d_ff,
        dropout=config.dropout,
        fast=True,
        init_std=config.init_std,
        bias=config.bias,
        position=config.position,
    )


def flops_per_token(cfg: transformer.GPTConfig) -> int:
    """Training FLOPs per token: 6N for the weights' matmuls (forward 2N, backward 4N), plus
    12 L d T for attention's two (T, T) products (PaLM's appendix B; nanoGPT's estimate_mfu).
    N leaves out the position embeddings (a lookup, no matmul); the tied token matrix counts
    once, as the output layer."""
    table = cfg.block_size * cfg.d_model if cfg.position == "learned" else 0
    n = transformer.parameters_by_formula(cfg) - table
    return 6 * n + 12 * cfg.n_layers * cfg.d_model * cfg.block_size


def configure_optimizer(model: nn.Module, config: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases or layer-norm parameters)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), **kwargs)


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of x (B, T) predicting y (B, T)."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


# ============================================================================ checkpoints


# The file format, its digest, atomic writing and CheckpointError live in course_lib.checkpoints;
# the trainer adds a "train" section (optimizer, scaler, RNG states, step, config) to the model's.


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ============================================================================ distributed


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)


def _all_reduce_sum(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.enabled:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


# ============================================================================ evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val: torch.Tensor,
    starts: torch.Tensor,
    mask: torch.Tensor,
    block_size: int,
    plan: course_device.DevicePlan,
    dist: Dist = Dist(),
    rows: int = 64,
) -> float:
    """Mean validation loss (nats per token) over the planned windows; ranks share the rows."""
    was_training = model.training
    model.eval()
    dev = plan.torch_device
    total = torch.zeros(2, dtype=torch.float64, device=dev)  # sum of losses, count
    mine = torch.arange(dist.rank, len(starts), dist.world_size)
    for i in range(0, len(mine), rows):
        sel = mine[i : i + rows]
        x, y = windows(val, starts[sel], block_size)
        m = mask[sel]
        y = y.masked_fill(~m, -100)  # ignore_index: targets counted elsewhere
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with plan.autocast():
            logits = model(x)
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
        )
        total[0] += loss.double()
        total[1] += int(m.sum())
    _all_reduce_sum(total, dist)
    model.train(was_training)
    return float(total[0] / total[1])


# ============================================================================ the run


@dataclass
class RunResult:
    out_dir: Path
    config: TrainConfig
    steps: int
    best_val_loss: float | None
    final_val_loss: float | None
    card: dict
    history: list[dict]
    stopped_early: bool = False

    def curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """{'train': (steps, losses), 'val': (steps, losses)} from the metrics."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for kind, key in (("train", "loss"), ("eval", "val_loss")):
            rows = [r for r in self.history if r["kind"] == kind]
            out["train" if kind == "train" else "val"] = (
                [r["step"] for r in rows],
                [r[key] for r in rows],
            )
        return out


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""


def _read_metrics(path: Path, up_to_step: int | None = None) -> list[dict]:
    """The rows of metrics.jsonl. A last line cut short (a process killed while writing it) is
    dropped; a broken line before the last is an error that names the file and line."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}, line {i + 1} is not JSON: {line[:80]!r}") from None
    if up_to_step is not None:
        rows = [r for r in rows if r["step"] <= up_to_step]
    return rows


def _write_metrics(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _progress(total: int, initial: int, enabled: bool):
    """A tqdm bar when tqdm is installed and wanted, else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    # tqdm.auto draws a widget in Jupyter, which ignores TQDM_DISABLE unless told explicitly
    off = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=off)


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    data: Data | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train the course GPT as `config` says, writing metrics, checkpoints, plot and run card
    into `out_dir`. device and compile 'auto' follow COURSE_DEVICE and COURSE_COMPILE when set.

    resume=True continues from `out_dir`'s checkpoint. The config must be the same except
    max_steps (and device, compile, dtype, threads); max_steps may not be below the saved step.
    The learning-rate schedule keeps the horizon the run started with (`lr_schedule_steps` in
    the checkpoint and run card): steps beyond it train at min_lr. A resume with nothing left
    to train keeps the run card as it is.

    `should_stop()` is polled after every step (under torchrun the ranks agree: one rank's
    request stops all of them at the same step): when it returns True the run saves a
    checkpoint and returns (the CLI wires SIGINT/SIGTERM to it). A checkpoint is written only
    after a finite training loss; otherwise NonFiniteLoss is raised."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (see preset()), got {type(config).__name__}")
    t_start = time.perf_counter()
    dist = Dist.from_env()
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    metrics_path = out / METRICS_NAME
    if resume and not ckpt_path.exists():
        raise CheckpointError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume and dist.main and ckpt_path.exists():
        raise FileExistsError(
            f"{out} already holds a run ({CHECKPOINT_NAME}); pass resume=True (--resume) to "
            "continue it, or choose another output directory"
        )

    # ---- checks before any compute
    data = data or load_data(config)
    if len(data.train) < config.block_size + 2:
        raise ValueError(
            f"TrainConfig.block_size ({config.block_size}) is longer than the training split "
            f"({len(data.train)} tokens)"
        )
    eval_plans = {
        "periodic": eval_plan(len(data.val), config.block_size, config.eval_windows),
        "final": eval_plan(len(data.val), config.block_size, config.final_eval_windows),
    }
    rows = rank_rows(config.batch_size, dist.world_size, dist.rank, config.grad_accum)
    plan = course_device.plan(device=config.device, compile=config.compile)  # auto: environment
    plan = course_device.with_dtype(plan, config.dtype)
    if dist.enabled and plan.type == "cuda":
        plan = dataclasses.replace(plan, device=f"cuda:{dist.local_rank}")
    threads_before, tf32_before = torch.get_num_threads(), course_device.tf32_settings()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(
            config=config,
            out=out,
            ckpt_path=ckpt_path,
            metrics_path=metrics_path,
            resume=resume,
            progress=progress,
            should_stop=should_stop,
            data=data,
            log=log,
            dist=dist,
            plan=plan,
            eval_plans=eval_plans,
            rows=rows,
            t_start=t_start,
        )
    finally:  # hand back the process's settings as found, also when the run fails
        torch.set_num_threads(threads_before)
        course_device.restore_tf32(tf32_before)


def _run(
    *,
    config,
    out,
    ckpt_path,
    metrics_path,
    resume,
    progress,
    should_stop,
    data,
    log,
    dist,
    plan,
    eval_plans,
    rows,
    t_start,
) -> RunResult:
    """The body of `train`, after the checks (see there)."""
    dev = plan.torch_device
    if dist.enabled and not torch.distributed.is_initialized():
        backend = "nccl" if plan.type == "cuda" else "gloo"
        if plan.type == "cuda":
            torch.cuda.set_device(dev)
        torch.distributed.init_process_group(backend)
    stop_group = None  # the ranks agree on stopping over gloo: a CPU flag, no GPU sync
    if dist.enabled and torch.distributed.get_backend() != "gloo":
        stop_group = torch.distributed.new_group(backend="gloo")
    if plan.tf32:
        course_device.set_tf32(True)  # train() restores the setting it found

    # ---- model, optimizer, scaler
    course_device.seed_everything(config.seed)
    mcfg = model_config(config, data.tokenizer.vocab_size)
    raw_model = transformer.GPT(mcfg).to(dev)
    optimizer = configure_optimizer(raw_model, config, course_device.fused_adamw(plan))
    scaler = course_device.grad_scaler(plan)
    step, best_val, tokens_seen, prior_train_s = 0, None, 0, 0.0
    schedule_steps = config.max_steps  # the cosine's horizon, fixed when the run starts
    if resume:
        payload = load_checkpoint(ckpt_path)
        t = payload.get("train")
        if not isinstance(t, dict):
            raise CheckpointError(
                f"{ckpt_path} has no field 'train': it was not written by train()"
            )
        saved = restore_config(TrainConfig, t["config"], ckpt_path, "train.config")
        diff = [
            f.name
            for f in fields(TrainConfig)
            if f.name not in ("max_steps", "device", "compile", "threads", "dtype")
            and getattr(saved, f.name) != getattr(config, f.name)
        ]
        if diff:
            raise CheckpointError(
                f"{ckpt_path} was written with a different configuration (fields {diff}); "
                "resume with the same settings"
            )
        if payload["tokenizer"]["pieces"] != data.tokenizer.pieces:
            raise CheckpointError(f"{ckpt_path} was trained on text with another vocabulary")
        raw_model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(t["optimizer"])
        scaler.load_state_dict(t["scaler"])
        step, best_val = t["step"], t["best_val_loss"]
        if config.max_steps < step:
            raise ValueError(
                f"TrainConfig.max_steps ({config.max_steps}) is below the step ({step}) that "
                f"{ckpt_path} was saved at; resume with max_steps >= {step}"
            )
        schedule_steps = t.get("lr_schedule_steps", saved.max_steps)
        tokens_seen, prior_train_s = t["tokens_seen"], t["train_seconds"]
        if t["world_size"] == dist.world_size:
            _set_rng_state(t["rng"][dist.rank] if dist.rank < len(t["rng"]) else t["rng"][0], dev)
        elif dist.main:
            log(
                f"resuming a run of world size {t['world_size']} on {dist.world_size}: the "
                "sample order continues, dropout's random draws do not match bit for bit"
            )
    model: nn.Module = raw_model
    if plan.compile:
        model = torch.compile(raw_model)
    if dist.enabled:
        ids = [dev.index] if plan.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        history = _read_metrics(metrics_path, up_to_step=step if resume else -1)
        _write_metrics(metrics_path, history)  # drops what was logged after the checkpoint
    else:
        history = []

    def checkpoint() -> None:
        if dist.enabled:  # every rank's RNG state, gathered on rank 0
            states = [None] * dist.world_size
            torch.distributed.all_gather_object(states, _rng_state(dev))
        else:
            states = [_rng_state(dev)]
        if dist.main:
            payload = model_payload(raw_model, data.tokenizer)
            payload["train"] = {
                "config": asdict(config),
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": states,
                "world_size": dist.world_size,
                "best_val_loss": best_val,
                "tokens_seen": tokens_seen,
                "train_seconds": train_s + prior_train_s,
                "lr_schedule_steps": schedule_steps,
            }
            save_checkpoint(ckpt_path, payload)
        if dist.enabled:
            torch.distributed.barrier()

    def record(row: dict) -> None:
        history.append(row)
        if dist.main:
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    # ---- the loop
    tokens_per_step = config.batch_size * config.block_size
    bar = _progress(config.max_steps, step, progress and dist.main)
    train_s, steady_s, steady_tokens, first_step_s = 0.0, 0.0, 0, None
    running = torch.zeros((), device=dev)
    stopped, last_log_step, trained_from = False, step, step
    # the last evaluation so far (on a resume, from the metrics): RunResult and card agree
    last_val = next((r["val_loss"] for r in reversed(history) if r["kind"] == "eval"), None)
    model.train()
    try:
        while step < config.max_steps:
            t0 = time.perf_counter()
            lr = course_optim.lr_at(
                step,
                base_lr=config.lr,
                warmup_steps=config.warmup_steps,
                total_steps=schedule_steps,
                min_lr=config.min_lr,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            starts = step_starts(
                config.seed, step, len(data.train), config.block_size, config.batch_size
            )
            x_all, y_all = windows(data.train, starts, config.block_size)
            step_loss = torch.zeros((), device=dev)
            for m, sl in enumerate(rows):
                x, y = x_all[sl], y_all[sl]
                if plan.type == "cuda":
                    x = x.pin_memory().to(dev, non_blocking=True)
                    y = y.pin_memory().to(dev, non_blocking=True)
                else:
                    x, y = x.to(dev), y.to(dev)
                last = m == len(rows) - 1
                sync = contextlib.nullcontext() if last or not dist.enabled else model.no_sync()
                with sync:
                    with plan.autocast():
                        loss = lm_loss(model, x, y)
                    scaler.scale(loss / len(rows)).backward()
                step_loss += loss.detach() / len(rows)
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += tokens_per_step
            running += step_loss
            stop_now = should_stop is not None and should_stop()
            if dist.enabled:  # one rank's request stops every rank, at this same step
                flag = torch.tensor([int(stop_now)])
                torch.distributed.all_reduce(flag, torch.distributed.ReduceOp.MAX, stop_group)
                stop_now = bool(flag.item())
            stop_now = stop_now and step < config.max_steps

            log_now = step % config.log_every == 0 or step == config.max_steps
            eval_now = step % config.eval_every == 0 or step == config.max_steps
            ckpt_now = (
                eval_now
                if not config.checkpoint_every
                else (step % config.checkpoint_every == 0 or step == config.max_steps)
            )
            if log_now or ckpt_now or stop_now:  # no checkpoint without a finite loss
                # mean loss since the last log, averaged over ranks: one host sync per log
                mean = _all_reduce_sum(running.clone(), dist) / dist.world_size
                value = float(mean) / (step - last_log_step)
                if not math.isfinite(value):
                    raise NonFiniteLoss(
                        f"the training loss became {value} at step {step}; the run stops here "
                        f"and keeps its last good checkpoint ({ckpt_path}). Try a lower lr "
                        "(TrainConfig.lr) or gradient clipping (TrainConfig.grad_clip)"
                    )
            if plan.type == "cuda" and (log_now or eval_now):
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            train_s += dt
            if first_step_s is None:
                first_step_s = dt
            elif step > 2:
                steady_s += dt
                steady_tokens += tokens_per_step
            if log_now:
                running.zero_()
                last_log_step = step
                row = {
                    "kind": "train",
                    "step": step,
                    "loss": value,
                    "lr": lr,
                    "tokens": tokens_seen,
                    "tokens_per_s": round(tokens_per_step / dt, 1),
                    "elapsed_s": round(time.perf_counter() - t_start, 3),
                }
                record(row)
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{tokens_per_step / dt:,.0f}")
            if eval_now:
                which = "final" if step == config.max_steps else "periodic"
                starts, mask = eval_plans[which]
                last_val = evaluate(model, data.val, starts, mask, config.block_size, plan, dist)
                best_val = last_val if best_val is None else min(best_val, last_val)
                record(
                    {
                        "kind": "eval",
                        "step": step,
                        "val_loss": last_val,
                        "val_windows": len(starts),
                        "elapsed_s": round(time.perf_counter() - t_start, 3),
                    }
                )
                message = f"step {step}/{config.max_steps}: val loss {last_val:.4f}"
                if bar is not None:
                    bar.write(message)
                elif dist.main:
                    log(message)
            if bar is not None:
                bar.update(1)
            if ckpt_now:
                checkpoint()
            if stop_now:
                if not ckpt_now:
                    checkpoint()
                stopped = True
                if dist.main:
                    log(f"stopped at step {step}; checkpoint written, continue with --resume")
                break
    finally:
        if bar is not None:
            bar.close()

    # ---- samples, plot, run card
    card = {}
    if dist.main:
        history = _read_metrics(metrics_path)
        card = _unchanged_card(out, step) if resume and step == trained_from else None
        if card is not None:
            log(f"nothing left to train: the run is at step {step}; its run card stands")
        else:
            card = _write_card(
                out,
                config=config,
                data=data,
                raw_model=raw_model,
                samples_wanted=not stopped,
                mcfg=mcfg,
                plan=plan,
                dist=dist,
                history=history,
                steps=step,
                lr_schedule_steps=schedule_steps,
                tokens_seen=tokens_seen,
                train_seconds=train_s + prior_train_s,
                wall_seconds=time.perf_counter() - t_start,
                steady=(steady_tokens, steady_s),
                first_step_s=first_step_s,
                best_val=best_val,
                resumed=resume,
            )
    if dist.enabled:
        torch.distributed.barrier()
    return RunResult(out, config, step, best_val, last_val, card, history, stopped)


# ============================================================================ reports


def _unchanged_card(out: Path, step: int) -> dict | None:
    """The run card already in `out` when it describes the run at `step` (a resume that
    trained nothing keeps it); None when there is none, or an older one."""
    try:
        card = json.loads((out / "run_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("steps") == step else None


def _write_card(out: Path, *, config, data, raw_model, samples_wanted, **facts) -> dict:
    """Samples (unless the run stopped early), the loss plot, run_card.json and run_card.md."""
    samples = []
    if config.sample_tokens and samples_wanted:
        raw_model.eval()
        for i in range(2):
            samples.append(
                course_generate.complete(
                    raw_model,
                    data.tokenizer,
                    config.sample_prompt,
                    config.sample_tokens,
                    temperature=0.8,
                    top_k=None,
                    seed=config.seed + i,
                )
            )
    card = run_card(config=config, data=data, samples=samples, **facts)
    card["loss_plot"] = plot_losses(facts["history"], out / "loss.png")
    (out / "run_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "run_card.md").write_text(card_markdown(card))
    return card


def run_card(
    *,
    config: TrainConfig,
    data: Data,
    mcfg: transformer.GPTConfig,
    plan: course_device.DevicePlan,
    dist: Dist,
    history: list[dict],
    steps: int,
    lr_schedule_steps: int,
    tokens_seen: int,
    train_seconds: float,
    wall_seconds: float,
    steady: tuple[int, float],
    first_step_s: float | None,
    best_val: float | None,
    samples: list[str],
    resumed: bool,
) -> dict:
    """The run's facts as a JSON-ready dict: config, device, versions, speed, MFU, results."""
    env = course_device.describe_environment(plan)
    tokens, seconds = steady
    tok_s = tokens / seconds if seconds > 0 else None
    fpt = flops_per_token(mcfg)
    dtype = str(plan.autocast_dtype).replace("torch.", "") if plan.autocast_dtype else "float32"
    peak_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    measured_peak = course_device.measure_matmul_flops(plan.device, peak_dtype[dtype], seconds=0.25)
    sheet_dtype = "tf32" if dtype == "float32" and plan.tf32 else dtype
    gpu = env.get("gpu")
    sheet_peak = course_device.datasheet_peak_flops(gpu, sheet_dtype) if gpu else None
    achieved = fpt * tok_s if tok_s else None  # tok_s counts the global batch: all ranks
    evals = [r for r in history if r["kind"] == "eval"]
    return {
        "config": asdict(config),
        "model": {
            **asdict(mcfg),
            "parameters": transformer.parameters_by_formula(mcfg),
            "flops_per_token": fpt,
        },
        "data": {
            "source": data.source,
            "vocab_size": data.tokenizer.vocab_size,
            "train_tokens": len(data.train),
            "val_tokens": len(data.val),
        },
        "device": {
            "plan": plan.summary(),
            "world_size": dist.world_size,
            "dtype": dtype,
        },
        "environment": env,
        "steps": steps,
        "lr_schedule_steps": lr_schedule_steps,
        "resumed": resumed,
        "tokens_seen": tokens_seen,
        "train_seconds": round(train_seconds, 3),
        "wall_seconds_this_process": round(wall_seconds, 3),
        "first_step_seconds": None if first_step_s is None else round(first_step_s, 3),
        "tokens_per_s": None if tok_s is None else round(tok_s, 1),
        "achieved_flops": achieved,
        "measured_peak_flops": measured_peak,
        "mfu_measured_peak": None
        if achieved is None
        else achieved / (measured_peak * dist.world_size),
        "datasheet_peak_flops": sheet_peak,
        "mfu_datasheet_peak": None
        if achieved is None or sheet_peak is None
        else achieved / (sheet_peak * dist.world_size),
        "best_val_loss": best_val,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "samples": samples,
    }


def card_markdown(card: dict) -> str:
    """The run card as Markdown."""
    c, e = card["config"], card["environment"]

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [
        "# Run card",
        "",
        f"- model: GPT, {card['model']['parameters']:,} parameters ({c['n_layers']} layers, "
        f"{c['n_heads']} heads, width {c['d_model']}, context {c['block_size']})",
        f"- data: {card['data']['source']}; vocabulary {card['data']['vocab_size']}",
        f"- steps: {card['steps']:,} ({card['tokens_seen']:,} tokens)"
        + (" (resumed)" if card["resumed"] else ""),
        f"- learning rate: {c['lr']:g}, warm-up {c['warmup_steps']} steps, cosine over "
        f"{card['lr_schedule_steps']:,} steps to {c['min_lr']:g}"
        + (
            "; the steps after that at the floor"
            if c["max_steps"] > card["lr_schedule_steps"]
            else ""
        ),
        f"- device: {e['device']} ({e.get('gpu', e['platform'])}), world size "
        f"{card['device']['world_size']}, dtype {card['device']['dtype']}, "
        f"torch.compile {e['torch.compile']}",
        f"- versions: python {e['python']}, torch {e['torch']}, course_lib {e['course_lib']}",
        f"- training time: {card['train_seconds']:.1f} s (first step "
        f"{num(card['first_step_seconds'], '.2f')} s, includes compilation when compiled)",
        f"- throughput: {num(card['tokens_per_s'], ',.0f')} tokens/s",
        f"- MFU: {num(card['mfu_measured_peak'], '.1%')} of the measured matmul peak "
        f"({num(card['measured_peak_flops'] and card['measured_peak_flops'] / 1e12, '.2f')} "
        f"TFLOP/s in {card['device']['dtype']})"
        + (
            f", {card['mfu_datasheet_peak']:.1%} of the data-sheet peak"
            if card["mfu_datasheet_peak"] is not None
            else ""
        ),
        f"- validation loss: best {num(card['best_val_loss'], '.4f')}, final "
        f"{num(card['final_val_loss'], '.4f')} (nats per character)",
        "",
        "## Samples",
        "",
    ]
    for s in card["samples"]:
        lines += ["```text", s, "```", ""]
    return "\n".join(lines) + "\n"


def plot_losses(history: list[dict], path: Path) -> str | None:
    """Train and validation loss against step as a PNG; None when matplotlib is missing."""
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from course_lib import plots
    except ImportError:
        return None
    curves = {}
    for kind, key, name in (("train", "loss", "train"), ("eval", "val_loss", "validation")):
        rows = [r for r in history if r["kind"] == kind]
        if rows:
            curves[name] = ([r["step"] for r in rows], [r[key] for r in rows])
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plots.loss_curves(curves, ax=ax, ylabel="loss (nats per character)", title="training run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


# ============================================================================ command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_lib.train",
        description="Train the course GPT on a text file or the shipped corpus.",
    )
    p.add_argument(
        "--preset",
        default="auto",
        help=f"one of {sorted(PRESETS)}, or auto (default): gpu on a CUDA GPU, else cpu",
    )
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: shipped corpus)")
    p.add_argument("--out", default=None, help="the run directory (default: runs/PRESET-DATE-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="override the preset's steps (with --resume: at least the saved step; the lr "
        "schedule keeps the horizon the run started with, later steps train at min_lr)",
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--compile", default=None, help="auto, 0 or 1")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any TrainConfig field, e.g. --set lr=3e-4 (repeatable); text is taken "
        "verbatim (a newline in bash: --set $'sample_prompt=ROMEO:\\n')",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, object] = {}
    for item in args.set:
        key, value = parse_override(item)
        overrides[key] = value
    for key in ("data", "max_steps", "device", "compile"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    return preset(resolve_preset(args.preset, args.device), **overrides)


def resolve_preset(name: str, device: str | None = None) -> str:
    """'auto' -> 'gpu' where the device plan picks CUDA, else 'cpu'; other names unchanged.
    A device of None or 'auto' follows COURSE_DEVICE, as train() does."""
    if name != "auto":
        return name
    return "gpu" if course_device.plan(device=device).type == "cuda" else "cpu"


def main(argv: list[str] | None = None) -> int:
    """The command line. Installs SIGINT/SIGTERM handlers: the first signal asks the run to
    write a checkpoint and stop after the current step; a second one stops at once."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume and args.out is None:
        parser.error("--resume needs --out DIR: the directory of the run to continue")
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = str(Path("runs") / f"{resolve_preset(args.preset, args.device)}-{stamp}")
        print(f"writing the run to {args.out}", file=sys.stderr)
    requested: list[int] = []

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)
        print(f"\nsignal {signum}: checkpoint after this step, then stop", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    result = None
    try:
        result = train(
            config,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            should_stop=lambda: bool(requested),
        )
    except (CheckpointError, NonFiniteLoss, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if result is not None and result.stopped_early and Dist.from_env().enabled:
            # torchrun sends SIGTERM to the other ranks as soon as one exits with 130; they
            # stopped at the same step and are only finishing: let them return 130 as well
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if Dist.from_env().main:
        card = result.card
        print(
            f"{result.steps} steps; best val loss {card['best_val_loss']}; "
            f"{card['tokens_per_s']} tokens/s; run card: {Path(args.out) / 'run_card.md'}"
        )
    return 130 if result.stopped_early else 0


if __name__ == "__main__":
    sys.exit(main())
