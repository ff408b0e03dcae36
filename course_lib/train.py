"""The course trainer: the training loop, the optimizer step, and the command line.

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
`torch.optim.AdamW` (fused where available), or with optimizer="muon" `torch.optim.Muon` for the
blocks' matrices and AdamW for the rest; linear warm-up + cosine decay (`course_lib.optim.lr_at`),
gradient clipping and gradient accumulation. `course_lib.device` picks the device, the autocast
dtype (bfloat16 where the GPU has it; float16 with a gradient scaler where it does not; float32
on the CPU), torch.compile and TF32; dtype="fast" times a few steps of the run's model in
float32 and in the low-precision type at the start, and keeps the faster (`choose_fast_dtype`).

This module is the loop (`train`, `optimizer_step`) and the command line. The rest of the
trainer, one module per concept:

    course_lib.train_config   TrainConfig, the presets, --set parsing, FLOPs per token
    course_lib.train_data     the text as ids, each step's windows, validation and evaluation
    course_lib.train_state    TrainState, and the checkpoint that saves and restores it
    course_lib.run_card       metrics file, progress bar, run card, loss plot
    course_lib.ddp            the processes of a torchrun job

Import needs only torch and NumPy; tqdm (progress bar) and matplotlib (loss plot) are used when
installed, so the module also runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import device as course_device
from course_lib import optim as course_optim
from course_lib import train_state, transformer
from course_lib.checkpoints import (
    CheckpointError,
    load_checkpoint,  # noqa: F401 (train.load_checkpoint reads a run's ckpt.pt)
)
from course_lib.ddp import Dist
from course_lib.run_card import Report, Timing, run_card, samples, unchanged_card, write_card
from course_lib.train_config import PRESETS, TrainConfig, model_config, parse_override, preset
from course_lib.train_data import Data, Validation, load_data, micro_batches, rank_rows
from course_lib.train_state import CHECKPOINT_NAME, Parts, TrainState, restore_run, save_run

METRICS_NAME = "metrics.jsonl"


# ============================================================================ one optimizer step


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of x (B, T) predicting y (B, T)."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def configure_optimizer(
    model: nn.Module, config: TrainConfig, fused: bool
) -> torch.optim.Optimizer | course_optim.Combined:
    """AdamW with weight decay on matrices only (not on biases or layer-norm parameters). With
    config.optimizer "muon": torch.optim.Muon (lr config.muon_lr, the same weight decay) for the
    blocks' 2-D matrices, stepped together with that AdamW for the rest (the embeddings and the
    tied output layer, norms, biases) as one `course_lib.optim.Combined`."""
    hidden = hidden_matrices(model) if config.optimizer == "muon" else []
    rest = [p for p in model.parameters() if all(p is not h for h in hidden)]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    kwargs = {"fused": True} if fused else {}
    adamw = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), **kwargs)
    if not hidden:
        return adamw
    # the loop sets each group's lr to the schedule's times lr_scale: Muon's peak is muon_lr
    muon_group = {"params": hidden, "lr_scale": config.muon_lr / config.lr}
    muon = course_optim.torch_muon()(
        [muon_group], lr=config.muon_lr, weight_decay=config.weight_decay
    )
    return course_optim.Combined(muon, adamw)


def hidden_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The 2-D weights inside the Transformer blocks (attention and MLP projections): Muon's
    parameters. The token embedding (also the output layer), position table, norms and biases
    are not among them."""
    return [
        p for name, p in model.named_parameters() if name.startswith("blocks.") and p.dim() == 2
    ]


def learning_rate(config: TrainConfig, state: TrainState) -> float:
    """The lr of the next step: warm-up, then cosine to min_lr over the run's first horizon."""
    return course_optim.lr_at(
        state.step,
        base_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=state.lr_schedule_steps,
        min_lr=config.min_lr,
    )


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    grad_clip: float,
    plan: course_device.DevicePlan,
) -> torch.Tensor:
    """One optimizer step over this rank's micro-batches [(x (b, T), y (b, T)), ...]: each mean
    loss / k is backpropagated (the gradients add up; DDP averages them over the ranks on the
    last one), then clipping, the (scaled) step and zeroed gradients. Returns the step's mean
    loss as a 0-dim tensor on the device (no host sync)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr  # Muon: its own lr
    k = len(micro_batches)
    step_loss = torch.zeros((), device=plan.torch_device)
    for m, (x, y) in enumerate(micro_batches):
        x, y = _to_device(x, plan), _to_device(y, plan)
        wait = m < k - 1 and isinstance(model, nn.parallel.DistributedDataParallel)
        with model.no_sync() if wait else contextlib.nullcontext():  # all-reduce on the last
            with plan.autocast():
                loss = lm_loss(model, x, y)
            scaler.scale(loss / k).backward()
        step_loss += loss.detach() / k
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return step_loss


def _to_device(t: torch.Tensor, plan: course_device.DevicePlan) -> torch.Tensor:
    if plan.type == "cuda":  # pinned memory: the copy overlaps the compute
        return t.pin_memory().to(plan.torch_device, non_blocking=True)
    return t.to(plan.torch_device)


# ============================================================================ dtype="fast"

FAST_DTYPE_GAIN = 0.10  # the low-precision type is kept only when its steps are >= 10% faster
FAST_DTYPE_ROUNDS = 5  # timed steps of each candidate, after 2 untimed ones


def time_steps(
    steps: dict[str, Callable[[], object]],
    rounds: int = FAST_DTYPE_ROUNDS,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """{name: median seconds of one call of steps[name]}, called in turn round after round (a
    slow spell of the machine hits each alike); the `warmup` first rounds are not timed."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(warmup + rounds):
        for name, step in steps.items():
            if r < warmup:
                step()
                continue
            t0 = clock()
            step()
            times[name].append(clock() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def decide_fast_dtype(seconds: dict[str, float], gain: float = FAST_DTYPE_GAIN) -> tuple[str, str]:
    """(dtype, reason) from the median step seconds of 'float32' and one low-precision type:
    the low-precision type when float32's step takes at least 1 + gain times as long."""
    low = next(k for k in seconds if k != "float32")
    speedup = seconds["float32"] / seconds[low]
    said = (
        f"dtype='fast', timed at the start: a training step took {seconds[low] * 1e3:.1f} ms in "
        f"{low} and {seconds['float32'] * 1e3:.1f} ms in float32 (medians of {FAST_DTYPE_ROUNDS})"
    )
    if speedup >= 1 + gain:
        return low, f"{said}: {low} is {speedup - 1:.0%} faster (at least {gain:.0%})"
    how = f"only {speedup - 1:.0%} faster" if speedup >= 1 else f"{1 / speedup - 1:.0%} slower"
    return "float32", f"{said}: {low} is {how}, under the {gain:.0%} it must gain; float32"


def choose_fast_dtype(
    config: TrainConfig,
    data: Data,
    plan: course_device.DevicePlan,
    rows: list[slice],
    dist: Dist,
    resume: bool = False,
    ckpt_path: Path | None = None,
) -> tuple[course_device.DevicePlan, dict | None]:
    """For dtype="fast": (the plan in the chosen dtype, the choice {"device", "dtype",
    "reason", "seconds"}); other dtypes: (plan, None). A resume keeps the choice saved in
    `ckpt_path` (made on the same kind of device); else a few optimizer steps of the run's
    model (uncompiled, on the first step's batch, lr 0) are timed in float32 and in bfloat16
    (CPU) or the GPU's type, and rank 0's choice holds for every rank."""
    if config.dtype != "fast":
        return plan, None
    choice = train_state.saved_dtype_choice(ckpt_path) if resume else None
    if choice is not None and choice["device"] == plan.type:
        reason = f"{choice['reason']}; kept from the run's start"
    else:
        if plan.type == "mps":  # the course does not autocast on MPS
            choice = {"dtype": "float32", "seconds": {}, "reason": "dtype='fast': MPS: float32"}
        else:
            gpu = str(plan.autocast_dtype).removeprefix("torch.")  # the GPU's: bfloat16, float16
            low = "bfloat16" if plan.type == "cpu" else gpu
            plans = {d: course_device.with_dtype(plan, d) for d in ("float32", low)}
            seconds = time_steps({d: _one_step(config, data, p, rows) for d, p in plans.items()})
            choice = dict(zip(("dtype", "reason"), decide_fast_dtype(seconds), strict=True))
            choice["seconds"] = seconds
        choice = dist.gather({**choice, "device": plan.type})[0]
        reason = choice["reason"]
    chosen = course_device.with_dtype(plan, choice["dtype"])
    return dataclasses.replace(chosen, dtype_reason=reason), choice


def _one_step(config: TrainConfig, data: Data, plan: course_device.DevicePlan, rows):
    """A function that runs one optimizer step of a fresh model of the run in `plan`'s dtype."""
    model = transformer.GPT(model_config(config, data.tokenizer.vocab_size))
    model = model.to(plan.torch_device).train()
    optimizer = configure_optimizer(model, config, course_device.fused_adamw(plan))
    scaler, batches = course_device.grad_scaler(plan), micro_batches(data, config, 0, rows)

    def step() -> None:
        optimizer_step(model, optimizer, scaler, batches, 0.0, config.grad_clip, plan)
        next(model.parameters())[0, 0].item()  # a host read: waits until the device is done

    return step


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
    into `out_dir` (device and compile 'auto' follow COURSE_DEVICE and COURSE_COMPILE).
    resume=True continues from `out_dir`'s checkpoint (`course_lib.train_state`).
    `should_stop()` is polled after every step (the ranks agree): True saves a checkpoint and
    returns (the CLI wires SIGINT/SIGTERM to it). No checkpoint is written after a non-finite
    training loss: NonFiniteLoss is raised instead."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (see preset()), got {type(config).__name__}")
    started, dist, out = time.perf_counter(), Dist.from_env(), Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    _check_run_dir(ckpt_path, resume, dist)
    data = data or load_data(config)  # every check before any compute
    validation = Validation.of(config, data)
    rows = rank_rows(config.batch_size, dist.world_size, dist.rank, config.grad_accum)
    plan = _device_plan(config, dist)
    with torch_settings(config.threads, tf32=plan.tf32):
        stop_group = dist.start(plan)
        plan, choice = choose_fast_dtype(config, data, plan, rows, dist, resume, ckpt_path)
        parts = _build(config, data, plan)  # model, optimizer, scaler; seeded
        optimizer, scaler = parts.optimizer, parts.scaler
        state = restore_run(ckpt_path, parts, dist, log) if resume else TrainState.start(config)
        state.dtype_choice = choice or state.dtype_choice  # dtype="fast": what it chose, why
        model = _compile_and_wrap(parts.model, plan, dist)  # in training mode
        timing = Timing(state.step, started=started)
        report = Report(out / METRICS_NAME, timing, config.max_steps, dist.main, progress, log)
        meter = RunningLoss(plan.torch_device, state.step)
        tokens_per_step = config.batch_size * config.block_size
        last_val, stop = report.last_val_loss(), False
        with report:
            while state.step < config.max_steps and not stop:
                t0 = time.perf_counter()
                lr = learning_rate(config, state)
                batches = micro_batches(data, config, state.step, rows)
                step_loss = optimizer_step(
                    model, optimizer, scaler, batches, lr, config.grad_clip, plan
                )
                meter.add(step_loss)
                state.step += 1
                state.tokens_seen += tokens_per_step
                stop = dist.any(should_stop is not None and should_stop(), stop_group)
                stop = stop and state.step < config.max_steps
                log_now, eval_now, save_now = _due(config, state.step)
                if log_now or save_now or stop:  # no checkpoint without a finite loss
                    loss = meter.mean(state.step, dist, ckpt_path)
                if plan.type == "cuda" and (log_now or eval_now):
                    torch.cuda.synchronize(plan.torch_device)
                dt = time.perf_counter() - t0
                state.train_seconds += dt
                timing.add(state.step, dt, tokens_per_step)
                if log_now:
                    meter.reset(state.step)
                    report.train_row(state.step, loss, lr, state.tokens_seen, tokens_per_step / dt)
                if eval_now:
                    t_eval = time.perf_counter()
                    last_val, n = validation.loss(model, plan, dist, state.step == config.max_steps)
                    state.best_val_loss = _lower(state.best_val_loss, last_val)
                    t_eval = time.perf_counter() - t_eval
                    report.eval_row(state.step, last_val, n, state.train_seconds, t_eval)
                report.step_done()
                if save_now or stop:
                    save_run(ckpt_path, state, parts, dist)
        if stop and dist.main:
            log(f"stopped at step {state.step}; checkpoint written, continue with --resume")
        card = _card(out, parts, data, plan, dist, state, report, stop) if dist.main else {}
        dist.barrier()
    return RunResult(
        out, config, state.step, state.best_val_loss, last_val, card, report.rows, stop
    )


class RunningLoss:
    """The training loss summed on the device since the last log row: one host sync a row."""

    def __init__(self, device: torch.device, step: int):
        self.total, self.since = torch.zeros((), device=device), step

    def add(self, step_loss: torch.Tensor) -> None:
        self.total += step_loss

    def mean(self, step: int, dist: Dist, ckpt_path: Path) -> float:
        """The mean over the steps since the last row and over the ranks, at step `step`;
        NonFiniteLoss when it is NaN or infinite."""
        value = float(dist.sum(self.total.clone()) / dist.world_size) / (step - self.since)
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"the training loss became {value} at step {step}; the run stops here "
                f"and keeps its last good checkpoint ({ckpt_path}). Try a lower lr "
                "(TrainConfig.lr) or gradient clipping (TrainConfig.grad_clip)"
            )
        return value

    def reset(self, step: int) -> None:
        self.total.zero_()
        self.since = step


@contextlib.contextmanager
def torch_settings(threads: int, *, tf32: bool) -> Iterator[None]:
    """Run with `threads` intra-op threads (0: as found) and TF32 matmuls when `tf32`; hand
    both settings back as found afterwards, also when the run fails."""
    threads_before, tf32_before = torch.get_num_threads(), course_device.tf32_settings()
    try:
        if threads:
            torch.set_num_threads(threads)
        if tf32:
            course_device.set_tf32(True)
        yield
    finally:
        torch.set_num_threads(threads_before)
        course_device.restore_tf32(tf32_before)


def _check_run_dir(ckpt_path: Path, resume: bool, dist: Dist) -> None:
    if resume and not ckpt_path.exists():
        raise CheckpointError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume and dist.main and ckpt_path.exists():
        raise FileExistsError(
            f"{ckpt_path.parent} already holds a run ({CHECKPOINT_NAME}); pass resume=True "
            "(--resume) to continue it, or choose another output directory"
        )


def _device_plan(config: TrainConfig, dist: Dist) -> course_device.DevicePlan:
    """The device plan (auto: COURSE_DEVICE / COURSE_COMPILE), in config.dtype; one GPU a rank."""
    plan = course_device.plan(device=config.device, compile=config.compile)
    plan = course_device.with_dtype(plan, config.dtype)
    if dist.enabled and plan.type == "cuda":
        plan = dataclasses.replace(plan, device=f"cuda:{dist.local_rank}")
    return plan


def _build(config: TrainConfig, data: Data, plan: course_device.DevicePlan) -> Parts:
    """The model (seeded), its optimizer and gradient scaler: what a checkpoint saves."""
    course_device.seed_everything(config.seed)
    model = transformer.GPT(model_config(config, data.tokenizer.vocab_size)).to(plan.torch_device)
    optimizer = configure_optimizer(model, config, course_device.fused_adamw(plan))
    return Parts(config, model, data.tokenizer, optimizer, course_device.grad_scaler(plan))


def _compile_and_wrap(model: transformer.GPT, plan: course_device.DevicePlan, dist: Dist):
    """What the loop calls: the model, compiled where the plan says, DDP-wrapped in a job."""
    if plan.compile:
        model = torch.compile(model)
    if dist.enabled:
        ids = [plan.torch_device.index] if plan.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model.train()


def _due(config: TrainConfig, step: int) -> tuple[bool, bool, bool]:
    """(log, evaluate, checkpoint) after optimizer step `step`: each on its period, all at the
    last step; checkpoints with the evaluations unless config.checkpoint_every says otherwise."""
    last = step == config.max_steps
    log_now = step % config.log_every == 0 or last
    eval_now = step % config.eval_every == 0 or last
    every = config.checkpoint_every
    return log_now, eval_now, (step % every == 0 or last) if every else eval_now


def _lower(best: float | None, value: float) -> float:
    return value if best is None else min(best, value)


def _card(
    out: Path,
    parts: Parts,
    data: Data,
    plan: course_device.DevicePlan,
    dist: Dist,
    state: TrainState,
    report: Report,
    stopped: bool,
) -> dict:
    """The run card (rank 0): kept when a resume trained nothing, else written anew with
    samples (none when the run stopped early) and the loss plot."""
    timing, rows = report.timing, report.rows
    if timing.resumed and state.step == timing.start_step:
        card = unchanged_card(out, state.step)
        if card is not None:
            report.log(
                f"nothing left to train: the run is at step {state.step}; its run card stands"
            )
            return card
    drawn = [] if stopped else samples(parts.model, data, parts.config)
    return write_card(
        out, run_card(parts.config, data, plan, dist, state, timing, rows, drawn), rows
    )


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
