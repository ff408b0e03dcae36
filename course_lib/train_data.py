"""The data a training run sees: the text as ids, each step's windows, each rank's rows of them,
and the validation windows with the evaluation over them.

    data = load_data(config)                        # Data: tokenizer, train and val ids
    starts = step_starts(seed, step, len(data.train), block_size, batch_size)
    x, y = windows(data.train, starts, block_size)  # (B, T) inputs and next-token targets
    rows = rank_rows(batch_size, world_size, rank, grad_accum)  # this rank's slices of a batch
    batches = micro_batches(data, config, step, rows)  # [(x, y), ...] of this rank at `step`
    starts, mask = eval_plan(len(data.val), block_size, count)
    val_loss = evaluate(model, data.val, starts, mask, block_size, plan)
    val_loss, n_windows = Validation.of(config, data).loss(model, plan, dist, final=False)

Data order: the windows of optimizer step s are drawn from a generator seeded by (seed, s), so
they depend on nothing else: not on earlier steps, not on how many processes share the work.
Under torchrun each rank takes its own slice of the same global batch, so a resumed run, or a
run on another number of processes, sees the same samples in the same order.

The loop that uses them is `course_lib.train`; the config is `course_lib.train_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import data as course_data
from course_lib import device as course_device
from course_lib import tokenizers
from course_lib.ddp import Dist
from course_lib.train_config import TrainConfig


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


def micro_batches(data: Data, config: TrainConfig, step: int, rows: list[slice]):
    """This rank's micro-batches [(x (b, T), y (b, T)), ...] of optimizer step `step`: the
    step's windows (`step_starts`: a function of the seed and the step), cut into `rows`."""
    n = len(data.train)
    starts = step_starts(config.seed, step, n, config.block_size, config.batch_size)
    x, y = windows(data.train, starts, config.block_size)
    return [(x[r], y[r]) for r in rows]


# ============================================================================ evaluation


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


@dataclass
class Validation:
    """The validation split and its two fixed window plans: `periodic` for the evaluations
    during the run, `final` for the one at max_steps ((starts (W,), mask (W, T)) each)."""

    val: torch.Tensor
    block_size: int
    periodic: tuple[torch.Tensor, torch.Tensor]
    final: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def of(cls, config: TrainConfig, data: Data) -> Validation:
        """The plans of `config` over `data.val`; refuses a block longer than either split."""
        if len(data.train) < config.block_size + 2:
            raise ValueError(
                f"TrainConfig.block_size ({config.block_size}) is longer than the training "
                f"split ({len(data.train)} tokens)"
            )
        n, block = len(data.val), config.block_size
        periodic = eval_plan(n, block, config.eval_windows)
        return cls(data.val, block, periodic, eval_plan(n, block, config.final_eval_windows))

    def loss(self, model: nn.Module, plan, dist: Dist, final: bool) -> tuple[float, int]:
        """(mean validation loss, number of windows) of the final or the periodic plan."""
        starts, mask = self.final if final else self.periodic
        return evaluate(model, self.val, starts, mask, self.block_size, plan, dist), len(starts)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val: torch.Tensor,
    starts: torch.Tensor,
    mask: torch.Tensor,
    block_size: int,
    plan: course_device.DevicePlan,
    dist: Dist | None = None,
    rows: int = 64,
) -> float:
    """Mean validation loss (nats per token) over the planned windows; ranks share the rows
    (`dist`: this process's place in a torchrun job; None: the only process)."""
    dist = dist or Dist()
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
    dist.sum(total)
    model.train(was_training)
    return float(total[0] / total[1])
