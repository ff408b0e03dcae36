"""The models the course ships: trained by one command, verified like the data, loaded in a line.

    model, tokenizer, info = load_reference()        # the reference GPT, in eval mode
    model, tokenizer, info = load_shipped("reference")
    python3 tools/course.py models [NAME ...]        # retrain and re-ship (all when no NAME)

Every shipped model has a definition in `MODELS` (a trainer preset, the fields it changes, a
description) and a folder `data/models/NAME/` holding what `build` wrote from one run of
`python -m course_lib.train`:

    model.pt        the weights, config and tokenizer (a `course_lib.checkpoints` file, no
                    optimizer state)
    config.json     the TrainConfig the run used, the command that made it, the definition
    tokenizer.json  {"type": "char", "pieces": [...]}
    run_card.json   the trainer's run card (device, wall time, tokens/s, losses, samples)
    run_card.md     the same, for people
    metrics.jsonl   one row per logged step: the training loss and learning rate, evaluations
    loss.png        the loss curves
    samples.txt     the run card's samples

`data/models/manifest.json` records every file's sha256 and byte count; `load_shipped` checks
them all before it loads anything, so a changed byte is a ChecksumError naming the file. This
module runs the trainer as a command (a subprocess), so it imports no trainer module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from course_lib import checkpoints
from course_lib import data as course_data
from course_lib.tokenizers import CharTokenizer, WordTokenizer

MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "model.pt"
COPIED_FROM_RUN = ("run_card.json", "run_card.md", "metrics.jsonl", "loss.png")
MAX_MODEL_BYTES = 8 * 1024 * 1024  # the files of one model together
REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / "build" / "models"  # the trainer's run folders (ignored by git)


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model's definition: `preset` of course_lib.train_config with `overrides`."""

    description: str
    preset: str = "cpu"
    overrides: dict = field(default_factory=dict)

    def train_args(self) -> list[str]:
        """The trainer's command-line arguments that make this model's TrainConfig."""
        args = ["--preset", self.preset]
        for key, value in self.overrides.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["--set", f"{key}={text}"]
        return args


# The reference model: character level on the small corpus, 256 characters of context (notebook
# 13's KV cache needs at least that), rotary positions, no biases, AdamW (pinned: the cpu preset
# moved to Muon, which did not train this model faster per second in a trial), float32 on a
# fixed 2 threads so that its first steps can be re-run and compared (tests/test_models.py),
# about 11 minutes of training on a 2-core CPU. Settings: bench/reference_model_trials.md.
MODELS: dict[str, ShippedModel] = {
    "reference": ShippedModel(
        description=(
            "the course's reference GPT: characters of the small Shakespeare corpus, "
            "256 characters of context, rotary positions, no biases, float32"
        ),
        preset="cpu",
        overrides={
            "n_layers": 4,
            "n_heads": 4,
            "d_model": 128,
            "d_ff": 512,
            "block_size": 256,
            "batch_size": 16,
            "max_steps": 4000,
            "optimizer": "adamw",  # not the cpu preset's Muon: bench/reference_model_trials.md
            "muon_lr": 0.02,
            "lr": 3e-3,
            "min_lr": 3e-4,
            "warmup_steps": 100,
            "weight_decay": 0.1,
            "eval_every": 500,
            "eval_windows": 100,
            "final_eval_windows": 0,
            "log_every": 1,
            "sample_tokens": 500,
            "dtype": "float32",
            "threads": 2,
            "compile": "0",
            "device": "cpu",
        },
    ),
}


@dataclass(frozen=True)
class BuiltModel:
    """A model made by a module's own command, `python -m MODULE build --out DIR ...`, which
    writes every file to ship into DIR (the Toolformer run makes three models at once)."""

    description: str
    module: str
    args: tuple[str, ...] = ()

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", self.module, "build", "--out", str(out), *self.args]


BUILT: dict[str, BuiltModel] = {
    "toolformer": BuiltModel(
        description=(
            "notebook 12's Toolformer run, seed 0, one thread: the base model M, the control "
            "M + C fine-tuned without calls, and the fine-tuned Toolformer "
            "(course_lib.toolformer_run)"
        ),
        module="course_lib.toolformer_run",
        args=("--seed", "0", "--threads", "1"),
    ),
    "search": BuiltModel(
        description=(
            "notebook 12's Search tool: the reader GPT trained from scratch on made-up plays to "
            "answer from a [Search(q)→snippet] note, seed 0, one thread, with its measured "
            "retrieval and exact-match results (course_lib.search)"
        ),
        module="course_lib.search",
        args=("--seed", "0", "--threads", "1"),
    ),
}


def models_dir() -> Path:
    """Where shipped models live: data/models/ (under COURSE_DATA_DIR when that is set)."""
    return course_data.data_dir() / "models"


def spec(name: str, registry: dict[str, ShippedModel] | None = None) -> ShippedModel:
    """The definition of model `name` (ValueError names the models there are)."""
    registry = MODELS if registry is None else registry
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__}")
    if name not in registry:
        raise ValueError(f"unknown model {name!r}; the shipped models are {sorted(registry)}")
    return registry[name]


# ============================================================================ manifest


def load_manifest(root: str | os.PathLike | None = None) -> dict:
    """data/models/manifest.json: {"models": {name: {"files": {file: {sha256, bytes}}, ...}}}."""
    path = Path(root if root is not None else models_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {"models": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def verify_model(name: str, root: str | os.PathLike | None = None) -> dict:
    """Check every file of shipped model `name` against the manifest; its manifest entry.
    A missing file is a FileNotFoundError, a changed one a ChecksumError; both name the file."""
    folder = Path(root if root is not None else models_dir())
    entry = load_manifest(folder)["models"].get(name)
    if entry is None:
        raise ValueError(
            f"model {name!r} is not in {folder / MANIFEST_NAME}; build it with "
            f"`python3 tools/course.py models {name}`"
        )
    for file, info in entry["files"].items():
        path = folder / name / file
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; restore it with `git checkout -- data/`")
        got = course_data.sha256_file(path)
        if got != info["sha256"]:
            raise course_data.ChecksumError(
                f"{path}: sha256 {got} does not match the manifest's {info['sha256']}; the file "
                f"is damaged or was changed. Restore it with `git checkout -- data/` or rebuild "
                f"it with `python3 tools/course.py models {name}`"
            )
    return entry


def _register(name: str, folder: Path, entry: dict) -> None:
    """Write `entry` (plus every file's sha256 and bytes) for `name` into the manifest."""
    files = sorted(p.name for p in (folder / name).iterdir() if p.is_file())
    entry = dict(entry)
    entry["files"] = {
        f: {
            "sha256": course_data.sha256_file(folder / name / f),
            "bytes": (folder / name / f).stat().st_size,
        }
        for f in files
    }
    manifest = load_manifest(folder)
    manifest["models"][name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)


# ============================================================================ build


def build(
    name: str,
    *,
    registry: dict[str, ShippedModel] | None = None,
    root: str | os.PathLike | None = None,
    scratch: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Train model `name` by running `python -m course_lib.train` into `scratch`/NAME (a fresh
    folder under build/), then ship it into `root`/NAME and register it; its manifest entry."""
    definition = spec(name, registry)
    folder = Path(root if root is not None else models_dir())
    run_dir = Path(scratch if scratch is not None else SCRATCH) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "course_lib.train", *definition.train_args()]
    cmd += ["--out", str(run_dir)] + ([] if progress else ["--no-progress"])
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"training model {name!r} failed (exit {done.returncode}): {cmd}")
    wall = time.perf_counter() - started
    ship(name, run_dir, folder, definition, wall)
    return verify_model(name, folder)


def ship(name: str, run_dir: Path, folder: Path, definition: ShippedModel, wall: float) -> None:
    """Copy run `run_dir` into `folder`/NAME as the shipped files, then register them."""
    target = folder / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    payload = checkpoints.load_checkpoint(run_dir / "ckpt.pt")
    model_only = {k: payload[k] for k in checkpoints.MODEL_FIELDS}
    checkpoints.save_checkpoint(target / WEIGHTS_NAME, model_only)
    for file in COPIED_FROM_RUN:
        if (run_dir / file).is_file():
            shutil.copyfile(run_dir / file, target / file)
    card = json.loads((run_dir / "run_card.json").read_text(encoding="utf-8"))
    command = f"python3 tools/course.py models {name}"
    config = {
        "name": name,
        "description": definition.description,
        "command": command,
        "trainer_command": "python -m course_lib.train " + " ".join(definition.train_args()),
        "train_config": payload["train"]["config"],
    }
    _write_json(target / "config.json", config)
    _write_json(target / "tokenizer.json", payload["tokenizer"])
    (target / "samples.txt").write_text(
        "\n\n---\n\n".join(card.get("samples") or []) + "\n", encoding="utf-8"
    )
    size = sum(p.stat().st_size for p in target.iterdir())
    if size > MAX_MODEL_BYTES:
        raise ValueError(
            f"model {name!r} takes {size} bytes in {target}, over MAX_MODEL_BYTES "
            f"({MAX_MODEL_BYTES}); make it smaller or log less often"
        )
    summary = {
        "description": definition.description,
        "command": command,
        "wall_seconds": round(wall, 1),
        "final_val_loss": card.get("final_val_loss"),
        "parameters": card["model"]["parameters"],
    }
    _register(name, folder, summary)


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ============================================================================ load


def load_shipped(
    name: str, root: str | os.PathLike | None = None
) -> tuple[nn.Module, CharTokenizer | WordTokenizer, dict]:
    """(model in eval mode on the CPU, tokenizer, info) of shipped model `name`, after checking
    every one of its files against the manifest. info: the manifest entry, plus "config" (the
    TrainConfig fields), "run_card" (the trainer's card) and "folder"."""
    folder = Path(root if root is not None else models_dir())
    entry = verify_model(name, folder)
    model, tokenizer = checkpoints.load_model(folder / name / WEIGHTS_NAME)
    info = dict(entry)
    info["config"] = json.loads((folder / name / "config.json").read_text(encoding="utf-8"))[
        "train_config"
    ]
    info["run_card"] = json.loads((folder / name / "run_card.json").read_text(encoding="utf-8"))
    info["folder"] = folder / name
    return model, tokenizer, info


def load_reference() -> tuple[nn.Module, CharTokenizer | WordTokenizer, dict]:
    """The reference model (see MODELS), verified: (model in eval mode, tokenizer, info)."""
    return load_shipped("reference")


def build_module(
    name: str,
    *,
    registry: dict[str, BuiltModel] | None = None,
    root: str | os.PathLike | None = None,
    scratch: str | os.PathLike | None = None,
) -> dict:
    """Run built model `name`'s command into `scratch`/NAME, copy every file it wrote into
    `root`/NAME with a config.json (the command), register them; the manifest entry."""
    definition = (BUILT if registry is None else registry)[name]
    folder = Path(root if root is not None else models_dir())
    run_dir = Path(scratch if scratch is not None else SCRATCH) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    cmd = definition.command(run_dir)
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise RuntimeError(f"building model {name!r} failed: {cmd}")
    wall = time.perf_counter() - started
    target = folder / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run_dir, target)
    module_command = " ".join(["python", "-m", definition.module, "build", "--out", "DIR"])
    command = f"python3 tools/course.py models {name}"
    config = {"name": name, "description": definition.description, "command": command}
    _write_json(target / "config.json", {**config, "module_command": module_command})
    size = sum(p.stat().st_size for p in target.iterdir())
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"model {name!r} takes {size} bytes, over MAX_MODEL_BYTES")
    summary = {"description": definition.description, "command": command}
    _register(name, folder, {**summary, "wall_seconds": round(wall, 1)})
    return verify_model(name, folder)


def main(argv: list[str] | None = None) -> int:
    """python -m course_lib.models [NAME ...]: build the named models (all when none)."""
    names = list(sys.argv[1:] if argv is None else argv) or [*MODELS, *BUILT]
    try:
        for name in names:
            if name not in BUILT:
                spec(name)  # every name checked before any training
    except ValueError as e:
        print(f"error: {e}; or one of {sorted(BUILT)}", file=sys.stderr)
        return 2
    for name in names:
        if name in BUILT:
            entry = build_module(name)
            print(f"{name}: {entry['wall_seconds']:.0f} s; shipped in {models_dir() / name}")
            continue
        entry = build(name)
        print(
            f"{name}: final val loss {entry['final_val_loss']:.4f}, "
            f"{entry['wall_seconds']:.0f} s; shipped in {models_dir() / name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
