"""course_lib.models: the registry, the build command, manifest checks, and the shipped models'
first 50 steps re-run against their stored metrics."""

import dataclasses
import json
import math
import shutil

import pytest
import torch

from course_lib import data, device, models, transformer
from course_lib.optim import lr_at
from course_lib.run_card import read_metrics
from course_lib.train import build_parser, config_from_args, train
from course_lib.train_config import preset
from course_lib.train_data import eval_plan, evaluate, load_data

TINY = models.ShippedModel(
    description="a tiny test model",
    preset="ci",
    overrides={
        "max_steps": 6,
        "warmup_steps": 2,
        "eval_every": 3,
        "final_eval_windows": 8,
        "log_every": 1,
        "sample_tokens": 12,
        "dtype": "float32",
        "threads": 1,
        "device": "cpu",
    },
)
REPRODUCED_STEPS = 50


def config_of(definition: models.ShippedModel):
    return preset(definition.preset, **definition.overrides)


def first_steps(definition: models.ShippedModel, steps: int, out) -> list[dict]:
    """The train rows of the definition's run, stopped after `steps` steps: the same config
    (so the same learning-rate horizon, `TrainState.lr_schedule_steps`), the same seed."""
    polls = []

    def stop_after():
        polls.append(1)  # train() polls once after every step
        return len(polls) >= steps

    result = train(config_of(definition), out, progress=False, should_stop=stop_after, log=str)
    assert result.steps == steps and result.stopped_early
    return [r for r in result.history if r["kind"] == "train"]


def assert_same_rows(stored: list[dict], rerun: list[dict], rtol: float) -> None:
    assert [r["step"] for r in rerun] == [r["step"] for r in stored]
    for old, new in zip(stored, rerun, strict=True):
        assert new["lr"] == pytest.approx(old["lr"], rel=1e-12), f"lr at step {old['step']}"
        assert new["loss"] == pytest.approx(old["loss"], rel=rtol), f"loss at step {old['step']}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model built by the command's code into a temporary models folder."""
    root = tmp_path_factory.mktemp("models")
    entry = models.build(
        "tiny", registry={"tiny": TINY}, root=root, scratch=root / "scratch", progress=False
    )
    return root, entry


# ---------------------------------------------------------------------------- the registry


def test_every_definition_is_a_valid_config_and_its_command_line_says_the_same():
    for name, definition in models.MODELS.items():
        config = config_of(definition)
        args = build_parser().parse_args(definition.train_args() + ["--out", "x"])
        assert config_from_args(args) == config, name


def test_the_reference_model_is_what_the_course_needs():
    config = config_of(models.spec("reference"))
    assert config.corpus == "small" and config.data is None
    assert config.block_size >= 256, "notebook 13's KV cache needs 256 characters of context"
    assert config.position == "rope" and config.bias is False
    assert config.dtype == "float32" and config.threads > 0, "reproducible first steps"
    assert config.log_every == 1, "every step's loss is stored for the reproduction test"
    mcfg = transformer.GPTConfig(
        vocab_size=80, block_size=256, d_model=config.d_model, n_heads=config.n_heads,
        n_layers=config.n_layers, d_ff=config.d_ff, bias=False, position="rope",
    )  # fmt: skip
    assert transformer.parameters_by_formula(mcfg) * 4 < models.MAX_MODEL_BYTES


def test_unknown_model_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown model 'nope'; the shipped models are"):
        models.spec("nope")
    with pytest.raises(TypeError, match="name must be a model name"):
        models.spec(3)


def test_the_command_line_refuses_an_unknown_name_before_training(capsys):
    assert models.main(["reference", "nope"]) == 2
    assert "error: unknown model 'nope'" in capsys.readouterr().err


def test_a_bool_override_becomes_a_setting_the_trainer_reads():
    args = models.ShippedModel("x", "ci", {"bias": False, "lr": 0.002}).train_args()
    assert args == ["--preset", "ci", "--set", "bias=false", "--set", "lr=0.002"]


# ---------------------------------------------------------------------------- the command


def test_the_command_ships_every_file_and_registers_it(tiny):
    root, entry = tiny
    folder = root / "tiny"
    expected = {"model.pt", "config.json", "tokenizer.json", "run_card.json", "run_card.md"}
    expected |= {"metrics.jsonl", "loss.png", "samples.txt"}
    assert {p.name for p in folder.iterdir()} == expected
    assert set(entry["files"]) == expected
    for file, info in entry["files"].items():
        assert info["sha256"] == data.sha256_file(folder / file)
        assert info["bytes"] == (folder / file).stat().st_size
    assert json.loads((root / "manifest.json").read_text())["models"]["tiny"] == entry
    assert entry["command"] == "python3 tools/course.py models tiny"
    weights = torch.load(folder / "model.pt", weights_only=True)
    assert "train" not in weights, "shipped weights carry no optimizer state"
    assert json.loads((folder / "config.json").read_text())["train_config"]["max_steps"] == 6


def test_the_loader_returns_the_model_in_eval_mode_with_its_info(tiny):
    root, entry = tiny
    model, tokenizer, info = models.load_shipped("tiny", root)
    assert isinstance(model, transformer.GPT) and not model.training
    assert tokenizer.vocab_size == model.config.vocab_size
    assert info["config"]["max_steps"] == 6 and info["run_card"]["steps"] == 6
    assert info["final_val_loss"] == info["run_card"]["final_val_loss"]
    assert info["files"] == entry["files"]


@pytest.mark.parametrize("file", ["model.pt", "metrics.jsonl", "samples.txt"])
def test_a_changed_byte_is_refused_naming_the_file(tiny, tmp_path, file):
    root, _ = tiny
    copy = tmp_path / "models"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("scratch"))
    raw = bytearray((copy / "tiny" / file).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (copy / "tiny" / file).write_bytes(bytes(raw))
    with pytest.raises(data.ChecksumError, match=rf"tiny/{file}: sha256 .* does not match"):
        models.load_shipped("tiny", copy)


def test_a_missing_file_or_model_is_refused(tiny, tmp_path):
    root, _ = tiny
    copy = tmp_path / "models"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("scratch"))
    (copy / "tiny" / "loss.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny/loss.png is missing"):
        models.verify_model("tiny", copy)
    with pytest.raises(ValueError, match=r"model 'other' is not in .*manifest.json"):
        models.verify_model("other", copy)


def test_a_model_over_the_size_cap_is_refused(tiny, tmp_path, monkeypatch):
    root, _ = tiny
    monkeypatch.setattr(models, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ValueError, match=r"model 'tiny' takes \d+ bytes .* over MAX_MODEL_BYTES"):
        models.ship("tiny", root / "scratch" / "tiny", tmp_path, TINY, wall=1.0)
    assert not (tmp_path / "manifest.json").exists(), "nothing registered"


def test_the_first_steps_of_a_built_model_are_reproduced(tiny, tmp_path):
    root, _ = tiny
    stored = [r for r in read_metrics(root / "tiny" / "metrics.jsonl") if r["kind"] == "train"]
    rerun = first_steps(TINY, 4, tmp_path / "run")
    assert_same_rows(stored[:4], rerun, rtol=1e-4)
    config = config_of(TINY)
    short_horizon = lr_at(3, base_lr=config.lr, warmup_steps=2, total_steps=4, min_lr=config.min_lr)
    assert rerun[-1]["lr"] != pytest.approx(short_horizon), "the full run's lr schedule"


# ---------------------------------------------------------------------------- shipped models


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_shipped_model_matches_the_manifest_and_its_definition(name):
    entry = models.verify_model(name)
    shipped = json.loads((models.models_dir() / name / "config.json").read_text())
    assert shipped["train_config"] == json.loads(
        json.dumps(dataclasses.asdict(config_of(models.spec(name))))
    )
    assert sum(f["bytes"] for f in entry["files"].values()) <= models.MAX_MODEL_BYTES


def test_the_reference_loss_is_re_measured_on_the_stored_weights():
    model, tokenizer, info = models.load_reference()
    config = config_of(models.spec("reference"))
    val = load_data(config).val
    starts, mask = eval_plan(len(val), config.block_size, 0)  # the whole split
    plan = device.with_dtype(device.plan(device="cpu", compile="0"), "float32")
    loss = evaluate(model, val, starts, mask, config.block_size, plan)  # under no_grad
    assert loss == pytest.approx(info["final_val_loss"], rel=1e-4)
    assert math.isfinite(loss) and loss < math.log(tokenizer.vocab_size)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_the_first_50_steps_of_each_shipped_model_are_reproduced(name, tmp_path):
    stored = read_metrics(models.models_dir() / name / "metrics.jsonl", REPRODUCED_STEPS)
    stored = [r for r in stored if r["kind"] == "train"]
    rerun = first_steps(models.spec(name), REPRODUCED_STEPS, tmp_path / "run")
    assert len(stored) == REPRODUCED_STEPS
    assert_same_rows(stored, rerun, rtol=1e-4)
