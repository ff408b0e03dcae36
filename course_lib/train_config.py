"""What a training run is: one frozen `TrainConfig`, three named presets, and what a run costs.

    cfg = preset("ci", max_steps=300)            # a preset with some fields changed
    cfg = cfg.replace(lr=3e-4)                    # a checked copy
    parse_override("lr=3e-4")                     # ('lr', 0.0003): --set on the command line
    flops_per_token(model_config(cfg, vocab_size=65))   # 6N + 12 L d T

Every field is checked when the config is made (a wrong type is a TypeError, a wrong value a
ValueError, and the message names the field), so a mistake is refused before any compute.

The trainer is four more modules: `course_lib.train` (the loop, the optimizer step and the
command line), `course_lib.train_data` (the text, each step's windows, the validation windows
and the evaluation), `course_lib.train_state` (the state a checkpoint saves and a resume
restores) and `course_lib.run_card` (metrics file, progress, run card and loss plot), with
`course_lib.ddp` for the processes of a torchrun job.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from course_lib import data as course_data
from course_lib import device as course_device
from course_lib import optim as course_optim
from course_lib import transformer
from course_lib.validate import int_at_least, positive_int

POSITIVE_INTS = (
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
)
OPTIMIZERS = ("adamw", "muon")
NON_NEGATIVE_INTS = (
    "seed",
    "warmup_steps",
    "eval_windows",
    "final_eval_windows",
    "checkpoint_every",
    "sample_tokens",
    "threads",
)


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
    optimizer: str = "adamw"  # or "muon": Muon for the blocks' matrices, AdamW (lr) for the rest
    muon_lr: float = 0.02  # Muon's peak lr (optimizer="muon"), on the same warm-up and cosine
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
    # auto (the device plan's), fast (bfloat16 or float16 if timed >= 10% faster at the start,
    # course_lib.train.choose_fast_dtype), float32, bfloat16, float16 (CUDA)
    dtype: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default

    def __post_init__(self):
        # One rule (course_lib.validate): a wrong type is a TypeError, a wrong value a ValueError.
        for name in POSITIVE_INTS:
            self._set(name, positive_int(getattr(self, name), f"TrainConfig.{name}"))
        for name in NON_NEGATIVE_INTS:
            self._set(name, int_at_least(getattr(self, name), f"TrainConfig.{name}", 0))
        self._check_model()
        self._check_numbers()
        self._check_batch()
        self._check_optimizer()
        self._check_runtime()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)  # the checked value (an int for 3.0 is refused)

    def _check_model(self) -> None:
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

    def _check_numbers(self) -> None:
        """The float fields, each in its interval ('(' and ')' leave the end out)."""
        _number(self, "lr", "(", 0.0, math.inf, ")")
        _number(self, "min_lr", "[", 0.0, self.lr, "]")
        _number(self, "init_std", "(", 0.0, math.inf, ")")
        _number(self, "dropout", "[", 0.0, 1.0, ")")
        _number(self, "val_fraction", "(", 0.0, 1.0, ")")
        _number(self, "weight_decay", "[", 0.0, math.inf, "]")
        _number(self, "beta1", "[", 0.0, 1.0, ")")
        _number(self, "beta2", "[", 0.0, 1.0, ")")
        _number(self, "grad_clip", "[", 0.0, math.inf, "]")
        _number(self, "muon_lr", "(", 0.0, math.inf, ")")

    def _check_batch(self) -> None:
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

    def _check_optimizer(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.optimizer == "muon":
            try:
                course_optim.torch_muon()
            except RuntimeError as e:
                raise ValueError(f"TrainConfig.optimizer='muon': {e}") from None

    def _check_runtime(self) -> None:
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


def _number(config: TrainConfig, name: str, left: str, low: float, high: float, right: str):
    """Check that field `name` is a finite number in the interval left low, high right."""
    v = getattr(config, name)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"TrainConfig.{name} must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"TrainConfig.{name} must be a finite number, got {v!r}")
    bad_low = v <= low if left == "(" else v < low
    bad_high = v >= high if right == ")" else v > high
    if bad_low or bad_high:
        raise ValueError(f"TrainConfig.{name} must be in {left}{low}, {high}{right}, got {v}")


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
    # measured against nanoGPT's CPU recipe in bench/RESULTS.md, each lever alone: the same
    # width and depth, Muon for the hidden matrices (lr 0.04) and AdamW for the rest (a higher
    # lr with beta2 0.95 and no weight decay), rotary positions, no biases, bfloat16 matmuls
    # only where they time faster here (dtype='fast'), 300 steps of 16 x 64 tokens
    "cpu": TrainConfig(
        n_layers=4,
        n_heads=4,
        d_model=128,
        d_ff=512,
        block_size=64,
        bias=False,
        position="rope",
        batch_size=16,
        max_steps=300,
        optimizer="muon",
        muon_lr=0.04,
        lr=6e-3,
        min_lr=6e-4,
        warmup_steps=30,
        weight_decay=0.0,
        beta2=0.95,
        eval_every=100,
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


# ============================================================================ model and cost


def model_config(config: TrainConfig, vocab_size: int) -> transformer.GPTConfig:
    """The course GPT a run trains: `config`'s sizes, on the fast path."""
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
