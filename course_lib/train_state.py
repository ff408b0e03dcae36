"""The state of a training run, and the checkpoint that saves it and a resume restores.

    parts = Parts(config, model, tokenizer, optimizer, scaler)   # what the state goes with
    state = TrainState.start(config)     # step 0; the cosine's horizon is config.max_steps
    save_run(path, state, parts, dist)   # ckpt.pt: the model, plus a "train" section
    state = restore_run(path, parts, dist)   # the mirror image: `parts` loaded, state returned

A run's checkpoint is a `course_lib.checkpoints` file (the model's weights, config and
tokenizer) with a "train" section: the `TrainState` fields (step, tokens seen, training time,
best validation loss, the learning-rate schedule's horizon, what dtype="fast" chose), the
optimizer's (AdamW's, or Muon's and AdamW's) and the gradient scaler's state, every rank's
random-number states, the world size and the `TrainConfig`. With those, a resumed run continues
bit for bit (the data order needs no state: each step's windows depend only on the seed and the
step, `course_lib.train_data`). The loop is `course_lib.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from course_lib import transformer
from course_lib.checkpoints import (
    CheckpointError,
    load_checkpoint,
    model_payload,
    restore_config,
    save_checkpoint,
)
from course_lib.ddp import Dist
from course_lib.tokenizers import CharTokenizer
from course_lib.train_config import TrainConfig

CHECKPOINT_NAME = "ckpt.pt"
# the fields a resume may change: the run's length, and how (not what) it computes
RESUMABLE_FIELDS = ("max_steps", "device", "compile", "threads", "dtype")
# TrainState fields that checkpoints written before them lack (their defaults then hold)
OPTIONAL_STATE = ("dtype_choice",)


@dataclass
class TrainState:
    """How far a run has come; the loop updates it after every step."""

    step: int = 0  # optimizer steps done
    tokens_seen: int = 0  # training tokens, all ranks together
    train_seconds: float = 0.0  # time in training steps, over every process that ran it
    best_val_loss: float | None = None
    lr_schedule_steps: int = 0  # the cosine's horizon, fixed when the run starts
    # dtype="fast": {"device", "dtype", "reason", "seconds"} timed when the run started (a
    # resume keeps it; course_lib.train.choose_fast_dtype); None for the other dtypes
    dtype_choice: dict | None = None

    @classmethod
    def start(cls, config: TrainConfig) -> TrainState:
        return cls(lr_schedule_steps=config.max_steps)


@dataclass
class Parts:
    """What a checkpoint saves besides the state: the model (not its compiled or DDP wrapper),
    its tokenizer, the optimizer and the gradient scaler, and the config they were made from."""

    config: TrainConfig
    model: transformer.GPT
    tokenizer: CharTokenizer
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def save_run(path: Path, state: TrainState, parts: Parts, dist: Dist) -> None:
    """Write the run's checkpoint (rank 0; every rank's RNG state gathered there)."""
    rng = dist.gather(rng_state(parts.device))
    if dist.main:
        payload = model_payload(parts.model, parts.tokenizer)
        payload["train"] = {
            **asdict(state),
            "optimizer": parts.optimizer.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "rng": rng,
            "world_size": dist.world_size,
            "config": asdict(parts.config),
        }
        save_checkpoint(path, payload)
    dist.barrier()


def restore_run(path: Path, parts: Parts, dist: Dist, log=print) -> TrainState:
    """Load the checkpoint `save_run` wrote into `parts` and return its state. Refused
    (CheckpointError) when it is not a trainer's checkpoint, or of a run with another config
    (but for RESUMABLE_FIELDS) or vocabulary; ValueError when config.max_steps is below its step."""
    payload = load_checkpoint(path)
    section = _train_section(payload, path)
    _check_same_run(payload, section, parts, path)
    parts.model.load_state_dict(payload["state_dict"])
    parts.optimizer.load_state_dict(section["optimizer"])
    parts.scaler.load_state_dict(section["scaler"])
    state = TrainState(**{f.name: section[f.name] for f in fields(TrainState) if f.name in section})
    if parts.config.max_steps < state.step:
        raise ValueError(
            f"TrainConfig.max_steps ({parts.config.max_steps}) is below the step ({state.step}) "
            f"that {path} was saved at; resume with max_steps >= {state.step}"
        )
    if section["world_size"] == dist.world_size:
        rng = section["rng"]
        set_rng_state(rng[dist.rank] if dist.rank < len(rng) else rng[0], parts.device)
    elif dist.main:
        log(
            f"resuming a run of world size {section['world_size']} on {dist.world_size}: the "
            "sample order continues, dropout's random draws do not match bit for bit"
        )
    return state


def _train_section(payload: dict, path: Path) -> dict:
    section = payload.get("train")
    if not isinstance(section, dict):
        raise CheckpointError(f"{path} has no field 'train': it was not written by train()")
    expected = [f.name for f in fields(TrainState) if f.name not in OPTIONAL_STATE]
    expected += ["optimizer", "scaler", "rng", "world_size", "config"]
    missing = [k for k in expected if k not in section]
    if missing:
        fields_named = ", ".join(f"'train.{k}'" for k in missing)
        raise CheckpointError(f"{path} lacks the field(s) {fields_named} of a trainer checkpoint")
    return section


def saved_dtype_choice(path: Path) -> dict | None:
    """What dtype="fast" chose when the run whose checkpoint is `path` started (None when it
    did not use dtype="fast"); CheckpointError when `path` is not a trainer's checkpoint."""
    return _train_section(load_checkpoint(path), path).get("dtype_choice")


def _check_same_run(payload: dict, section: dict, parts: Parts, path: Path) -> None:
    saved = restore_config(TrainConfig, section["config"], path, "train.config")
    diff = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS
        and getattr(saved, f.name) != getattr(parts.config, f.name)
    ]
    if diff:
        raise CheckpointError(
            f"{path} was written with a different configuration (fields {diff}); "
            "resume with the same settings"
        )
    if payload["tokenizer"]["pieces"] != parts.tokenizer.pieces:
        raise CheckpointError(f"{path} was trained on text with another vocabulary")


def rng_state(device: torch.device) -> dict:
    """This process's random-number states: the CPU generator's, and the GPU's on CUDA."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """The mirror of `rng_state`."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
