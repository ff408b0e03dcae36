"""What a training run reports: its metrics file and progress bar, its clock, and the run card
with samples and a loss plot.

    timing = Timing(start_step=0)
    with Report(out / "metrics.jsonl", timing, 100, main=True, progress=True, log=print) as report:
        report.train_row(step=1, loss=4.2, lr=1e-3, tokens=1024, tok_s=5e4)  # + the bar
    card = run_card(config, data, plan, dist, state, timing, report.rows, samples)
    write_card(out, card, report.rows)     # run_card.json, run_card.md, loss.png

The run card gathers what someone needs to trust or repeat a run: the config, the device and
versions, the dtype and why (for dtype="fast", the step timings that chose it), the time,
tokens per second, the model FLOPs utilisation (MFU) against a measured matmul peak (and, on a
known GPU, the data sheet's), the best validation loss and samples.
The loop that fills it is `course_lib.train`. matplotlib is used only when installed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from course_lib import device as course_device
from course_lib import generate as course_generate
from course_lib import transformer
from course_lib.ddp import Dist
from course_lib.train_config import TrainConfig, flops_per_token, model_config
from course_lib.train_data import Data
from course_lib.train_state import TrainState


def read_metrics(path: Path, up_to_step: int | None = None) -> list[dict]:
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


class Report:
    """What the loop reports as it goes: metrics.jsonl (one JSON object per line: {"kind":
    "train" | "eval", "step", ...}) and its rows in memory, a tqdm progress bar when wanted and
    installed, and evaluation messages. Only rank 0 (`main`) writes the file and talks; it first
    keeps the rows up to the step the run starts from (a resume drops what was logged after
    its checkpoint; a new run, every row). Used as a context manager: leaving it closes the
    bar."""

    def __init__(self, path: Path, timing: Timing, total: int, main: bool, progress: bool, log):
        self.path, self.timing, self.total, self.main, self.log = path, timing, total, main, log
        self.rows: list[dict] = []
        if main:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.rows = read_metrics(path, up_to_step=timing.start_step)
            path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self.bar = _progress_bar(total, timing.start_step, progress and main)

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def record(self, row: dict) -> None:
        self.rows.append(row)
        if self.main:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def train_row(self, step: int, loss: float, lr: float, tokens: int, tok_s: float) -> None:
        """Step `step`: the mean loss since the last row, its lr, the tokens so far, tokens/s."""
        row = {"kind": "train", "step": step, "loss": loss, "lr": lr, "tokens": tokens}
        row.update(tokens_per_s=round(tok_s, 1), elapsed_s=round(self.timing.elapsed(), 3))
        self.record(row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}")

    def eval_row(
        self, step: int, val_loss: float, n_windows: int, train_s: float, eval_s: float
    ) -> None:
        """One evaluation; train_s: the training steps' seconds so far (evaluations and
        start-up excluded), eval_s: this evaluation's seconds (bench/ablation.py uses both)."""
        row = {"kind": "eval", "step": step, "val_loss": val_loss, "val_windows": n_windows}
        times = {"train_s": round(train_s, 3), "eval_s": round(eval_s, 3)}
        self.record({**row, **times, "elapsed_s": round(self.timing.elapsed(), 3)})
        message = f"step {step}/{self.total}: val loss {val_loss:.4f}"
        if self.bar is not None:
            self.bar.write(message)
        elif self.main:
            self.log(message)

    def step_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def last_val_loss(self) -> float | None:
        """The last evaluation so far (on a resume, from the file)."""
        return next((r["val_loss"] for r in reversed(self.rows) if r["kind"] == "eval"), None)


def _progress_bar(total: int, initial: int, enabled: bool):
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


@dataclass
class Timing:
    """This process's clock: wall time, the first step (compilation included) and the steady
    steps after the first two, whose tokens per second the card reports."""

    start_step: int  # 0, or the step a resume starts from
    started: float = field(default_factory=time.perf_counter)
    first_step_s: float | None = None
    steady_s: float = 0.0
    steady_tokens: int = 0

    def add(self, step: int, seconds: float, tokens: int) -> None:
        """Count optimizer step `step` (from 1), which took `seconds` for `tokens` tokens."""
        if self.first_step_s is None:
            self.first_step_s = seconds
        elif step > 2:
            self.steady_s += seconds
            self.steady_tokens += tokens

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def resumed(self) -> bool:  # a run's first checkpoint is at step 1 or later
        return self.start_step > 0


# ============================================================================ the card


def samples(model: transformer.GPT, data: Data, config: TrainConfig) -> list[str]:
    """Two completions of config.sample_prompt (none when config.sample_tokens is 0)."""
    if not config.sample_tokens:
        return []
    model.eval()
    return [
        course_generate.complete(
            model,
            data.tokenizer,
            config.sample_prompt,
            config.sample_tokens,
            temperature=0.8,
            top_k=None,
            seed=config.seed + i,
        )
        for i in range(2)
    ]


def unchanged_card(out: Path, step: int) -> dict | None:
    """The run card already in `out` when it describes the run at `step` (a resume that
    trained nothing keeps it); None when there is none, or an older one."""
    try:
        card = json.loads((out / "run_card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("steps") == step else None


def write_card(out: Path, card: dict, history: list[dict]) -> dict:
    """The loss plot, run_card.json and run_card.md in `out`; returns the card."""
    card["loss_plot"] = plot_losses(history, out / "loss.png")
    (out / "run_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "run_card.md").write_text(card_markdown(card))
    return card


def run_card(
    config: TrainConfig,
    data: Data,
    plan: course_device.DevicePlan,
    dist: Dist,
    state: TrainState,
    timing: Timing,
    history: list[dict],
    samples: list[str],
) -> dict:
    """The run's facts as a JSON-ready dict: config, device, versions, speed, MFU, results."""
    mcfg = model_config(config, data.tokenizer.vocab_size)
    env = course_device.describe_environment(plan)
    tokens, seconds = timing.steady_tokens, timing.steady_s
    tok_s = tokens / seconds if seconds > 0 else None
    evals = [r for r in history if r["kind"] == "eval"]
    return {
        "config": asdict(config),
        "model": {
            **asdict(mcfg),
            "parameters": transformer.parameters_by_formula(mcfg),
            "flops_per_token": flops_per_token(mcfg),
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
            "dtype": _dtype(plan),
            "dtype_reason": plan.dtype_reason,  # dtype="fast": the timings that chose it
            "dtype_seconds": (state.dtype_choice or {}).get("seconds")
            if config.dtype == "fast"
            else None,
        },
        "environment": env,
        "steps": state.step,
        "lr_schedule_steps": state.lr_schedule_steps,
        "resumed": timing.resumed,
        "tokens_seen": state.tokens_seen,
        "train_seconds": round(state.train_seconds, 3),
        "wall_seconds_this_process": round(timing.elapsed(), 3),
        "first_step_seconds": None
        if timing.first_step_s is None
        else round(timing.first_step_s, 3),
        "tokens_per_s": None if tok_s is None else round(tok_s, 1),
        **_utilisation(flops_per_token(mcfg), tok_s, plan, env.get("gpu"), dist.world_size),
        "best_val_loss": state.best_val_loss,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "samples": samples,
    }


def _dtype(plan: course_device.DevicePlan) -> str:
    return str(plan.autocast_dtype).replace("torch.", "") if plan.autocast_dtype else "float32"


def _utilisation(fpt: int, tok_s: float | None, plan, gpu: str | None, world_size: int) -> dict:
    """Achieved FLOP/s and MFU against a matmul peak measured now in the run's dtype, and on a
    known GPU against its data sheet. tok_s counts the global batch: all ranks."""
    dtype = _dtype(plan)
    peak_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    measured_peak = course_device.measure_matmul_flops(plan.device, peak_dtype[dtype], seconds=0.25)
    sheet_dtype = "tf32" if dtype == "float32" and plan.tf32 else dtype
    sheet_peak = course_device.datasheet_peak_flops(gpu, sheet_dtype) if gpu else None
    achieved = fpt * tok_s if tok_s else None
    return {
        "achieved_flops": achieved,
        "measured_peak_flops": measured_peak,
        "mfu_measured_peak": None if achieved is None else achieved / (measured_peak * world_size),
        "datasheet_peak_flops": sheet_peak,
        "mfu_datasheet_peak": None
        if achieved is None or sheet_peak is None
        else achieved / (sheet_peak * world_size),
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
        f"- dtype {card['device']['dtype']}: {card['device'].get('dtype_reason', 'not recorded')}",
        f"- optimizer: {c.get('optimizer', 'adamw')}"
        + (
            f", Muon lr {c['muon_lr']:g} for the blocks' matrices"
            if c.get("optimizer") == "muon"
            else ""
        ),
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
