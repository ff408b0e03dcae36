"""course_lib.train: configs, data order, checkpoints, resume (in-process, after SIGTERM and after
SIGKILL), bad input, non-finite losses, torchrun data parallelism, and a bare-machine import."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import quiet, stop_after, tiny

from course_lib import (
    checkpoints,
    ddp,
    optim,
    run_card,
    train_config,
    train_data,
    train_state,
    transformer,
)
from course_lib import device as course_device
from course_lib import train as T
from course_lib.exercises import nb08, nb09

ROOT = Path(__file__).resolve().parents[1]


def state_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return T.load_checkpoint(run_dir / T.CHECKPOINT_NAME)["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "course_lib.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def set_args(config: T.TrainConfig) -> list[str]:
    """A config as `--set key=value` arguments for the command line."""
    out = []
    for f in dataclasses.fields(T.TrainConfig):
        value = getattr(config, f.name)
        if value != getattr(T.PRESETS["ci"], f.name) and f.name != "sample_prompt":
            out += ["--set", f"{f.name}={'none' if value is None else value}"]
    return out


# ------------------------------------------------------------------------------ configuration


def test_presets_are_valid_and_differ():
    assert set(T.PRESETS) == {"ci", "cpu", "gpu"}
    assert T.preset("ci").compile == "0"  # compiling costs more than a ci run
    assert T.preset("gpu").d_model > T.preset("cpu").d_model > T.preset("ci").d_model
    assert T.preset("cpu", lr=3e-3).lr == 3e-3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.preset("huge"), "unknown preset 'huge'"),
        (lambda: T.preset("ci", d_model=66, n_heads=4), "TrainConfig.d_model (66) must be"),
        (lambda: T.preset("ci", lr=0.0), "TrainConfig.lr must be in (0.0"),
        (lambda: T.preset("ci", lr=-1e-3), "TrainConfig.lr must be in (0.0"),
        (lambda: T.preset("ci", min_lr=1.0), "TrainConfig.min_lr must be in"),
        (lambda: T.preset("ci", n_layers=0), "TrainConfig.n_layers must be a positive int"),
        (lambda: T.preset("ci", dropout=1.0), "TrainConfig.dropout must be in [0.0, 1.0)"),
        (lambda: T.preset("ci", warmup_steps=100, max_steps=50), "TrainConfig.warmup_steps"),
        (lambda: T.preset("ci", batch_size=10, grad_accum=4), "TrainConfig.batch_size (10)"),
        (lambda: T.preset("ci", corpus="tiny"), "TrainConfig.corpus must be one of"),
        (lambda: T.preset("ci", device="gpu"), "TrainConfig.device must be one of"),
        (lambda: T.preset("ci", compile="maybe"), "TrainConfig.compile must be one of"),
        (lambda: T.preset("ci", nonsense=1), "TrainConfig has no field(s) ['nonsense']"),
        (lambda: T.preset("ci", position="alibi"), "TrainConfig.position must be 'learned'"),
        (lambda: T.preset("ci", dtype="fp8"), "TrainConfig.dtype must be one of"),
        (lambda: T.preset("ci", final_eval_windows=-1), "TrainConfig.final_eval_windows must"),
    ],
)
def test_invalid_configs_name_the_field(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", 2.5, "TrainConfig.batch_size must be an integer, got float 2.5"),
        ("n_heads", "4", "TrainConfig.n_heads must be an integer, got str '4'"),
        ("seed", True, "TrainConfig.seed must be an integer"),
        ("dropout", "0.1", "TrainConfig.dropout must be a number, got str '0.1'"),
        ("bias", "yes", "TrainConfig.bias must be True or False"),
        ("data", 3, "TrainConfig.data must be a path string or None"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_type_error(field, value, message):
    # One rule across course_lib: a wrong type is a TypeError, a wrong value a ValueError.
    with pytest.raises(TypeError) as e:
        T.preset("ci", **{field: value})
    assert message in str(e.value)


def test_block_longer_than_data_is_refused_before_any_compute(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be, that is the question\n" * 3)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"TrainConfig.block_size \(64\) is longer than the"):
        T.train(tiny(short, block_size=64), out, progress=False, log=quiet)
    assert not out.exists()  # nothing was written


def test_parse_override_types_values_like_the_field():
    assert T.parse_override("lr=3e-4") == ("lr", 3e-4)
    assert T.parse_override("max-steps=10") == ("max_steps", 10)
    assert T.parse_override("data=none") == ("data", None)
    assert T.parse_override("bias=false") == ("bias", False)
    with pytest.raises(ValueError, match="expected true or false"):
        T.parse_override("bias=maybe")
    assert T.parse_override("sample_prompt=ROMEO:") == ("sample_prompt", "ROMEO:")
    with pytest.raises(ValueError, match="no such field"):
        T.parse_override("learning_rate=1")
    with pytest.raises(ValueError, match="expected a int"):
        T.parse_override("max_steps=ten")


@pytest.mark.parametrize(
    "prompt",
    ["ROMÉO:", "罗密欧与朱丽叶：", "ends in a backslash \\", "ROMEO:\\n", "tab\there"],
    ids=["accent", "chinese", "trailing-backslash", "backslash-n", "real-tab"],
)
def test_sample_prompt_is_kept_verbatim(prompt):
    """No escape decoding: UTF-8 text stays itself (no mojibake, no unknown tokens) and a
    backslash is just a character (a shell gives a newline with $'...\\n')."""
    assert T.parse_override(f"sample_prompt={prompt}") == ("sample_prompt", prompt)
    assert (
        T.config_from_args(
            T.build_parser().parse_args(["--preset", "ci", "--set", f"sample_prompt={prompt}"])
        ).sample_prompt
        == prompt
    )


def test_seed_zero_is_a_valid_seed():
    assert T.preset("ci", seed=0).seed == 0
    assert T.parse_override("seed=0") == ("seed", 0)
    with pytest.raises(ValueError, match=r"TrainConfig.seed must be >= 0, got -1"):
        T.preset("ci", seed=-1)


def test_cli_names_a_data_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ROMÉO: ".encode("latin-1") * 200)
    code = T.main(["--preset", "ci", "--data", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: TrainConfig.data: ") and "latin1.txt is not UTF-8 text" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_cli_resume_needs_an_out_directory(capsys):
    with pytest.raises(SystemExit) as e:
        T.main(["--preset", "ci", "--resume"])
    assert e.value.code == 2
    assert "--resume needs --out DIR" in capsys.readouterr().err


def test_cli_refuses_bad_input_with_a_message(text_file, tmp_path):
    r = cli(["--preset", "nope", "--out", str(tmp_path / "x")])
    assert r.returncode == 2 and "unknown preset 'nope'" in r.stderr
    r = cli(["--preset", "ci", "--out", str(tmp_path / "x"), "--set", "n_heads=3"])
    assert r.returncode == 2 and "TrainConfig.d_model (64) must be divisible" in r.stderr
    r = cli(["--preset", "ci", "--out", str(tmp_path / "x"), "--resume"])
    assert r.returncode == 2 and "no checkpoint at" in r.stderr


# ------------------------------------------------------------------------------ data order


def test_step_windows_depend_only_on_seed_and_step():
    a = train_data.step_starts(7, 5, 1000, 16, 8)
    assert torch.equal(a, train_data.step_starts(7, 5, 1000, 16, 8))
    assert not torch.equal(a, train_data.step_starts(7, 6, 1000, 16, 8))
    assert not torch.equal(a, train_data.step_starts(8, 5, 1000, 16, 8))
    assert int(a.min()) >= 0 and int(a.max()) < 1000 - 16
    ids = torch.arange(100)
    x, y = train_data.windows(ids, torch.tensor([0, 50]), 4)
    assert x.tolist() == [[0, 1, 2, 3], [50, 51, 52, 53]]
    assert y.tolist() == [[1, 2, 3, 4], [51, 52, 53, 54]]


@pytest.mark.parametrize(("batch", "world", "accum"), [(8, 1, 1), (8, 2, 1), (12, 2, 3), (8, 4, 2)])
def test_ranks_and_micro_steps_partition_the_global_batch(batch, world, accum):
    seen = []
    for rank in range(world):
        slices = train_data.rank_rows(batch, world, rank, accum)
        assert len(slices) == accum
        sizes = {s.stop - s.start for s in slices}
        assert sizes == {batch // (world * accum)}  # equal micro-batches
        seen += [i for s in slices for i in range(s.start, s.stop)]
    assert sorted(seen) == list(range(batch))


def test_unequal_micro_batches_are_refused():
    with pytest.raises(ValueError, match=r"divisible by world size x grad_accum \(3 x 1\)"):
        train_data.rank_rows(8, 3, 0, 1)


@pytest.mark.parametrize(("n_val", "block"), [(101, 10), (100, 10), (57, 8), (9, 8)])
def test_full_validation_counts_every_target_exactly_once(n_val, block):
    starts, mask = train_data.eval_plan(n_val, block, 0)
    counted = torch.zeros(n_val, dtype=torch.long)
    for s, m in zip(starts.tolist(), mask, strict=True):
        targets = torch.arange(s + 1, s + block + 1)
        counted[targets[m]] += 1
    assert counted[0] == 0 and bool((counted[1:] == 1).all())


def test_fixed_validation_windows_and_too_short_split():
    starts, mask = train_data.eval_plan(1000, 16, 10)
    assert len(starts) == 10 and int(starts[0]) == 0 and int(starts[-1]) == 1000 - 17
    assert bool(mask.all())
    with pytest.raises(ValueError, match=r"block_size \(16\) is longer than the validation"):
        train_data.eval_plan(16, 16, 0)


def test_flops_per_token_is_six_n_plus_attention():
    learned = T.model_config(T.preset("cpu", position="learned"), vocab_size=65)
    model = transformer.GPT(learned)
    n = transformer.count_parameters(model) - model.pos_emb.weight.numel()
    assert train_config.flops_per_token(learned) == 6 * n + 12 * 4 * 128 * 64
    rope = T.model_config(T.preset("cpu"), vocab_size=65)  # no position table to leave out
    assert (
        train_config.flops_per_token(rope)
        == 6 * transformer.count_parameters(transformer.GPT(rope)) + 12 * 4 * 128 * 64
    )


# ------------------------------------------------------------------------------ a run


def test_a_run_writes_metrics_checkpoint_plot_and_card(text_file, tmp_path):
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threads = torch.get_num_threads()
    r = T.train(tiny(text_file, sample_tokens=20), out, progress=False, log=quiet)
    # train() installs no signal handler and leaves the thread count as it found it
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert torch.get_num_threads() == threads
    assert r.steps == 24 and not r.stopped_early
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if x["kind"] == "train"] == list(range(1, 25))
    assert [x["step"] for x in rows if x["kind"] == "eval"] == [8, 16, 24]
    train_losses = [x["loss"] for x in rows if x["kind"] == "train"]
    assert train_losses[-1] < train_losses[0] - 0.5  # it learns
    assert r.best_val_loss == min(x["val_loss"] for x in rows if x["kind"] == "eval")
    card = json.loads((out / "run_card.json").read_text())
    assert card["steps"] == 24 and card["tokens_seen"] == 24 * 8 * 16
    assert 0 < card["mfu_measured_peak"] < 1 and card["tokens_per_s"] > 0
    assert len(card["samples"]) == 2 and all(s.startswith("\n") for s in card["samples"])
    assert card["model"]["parameters"] == transformer.count_parameters(
        transformer.GPT(T.model_config(r.config, card["data"]["vocab_size"]))
    )
    md = (out / "run_card.md").read_text()
    assert "MFU" in md and "tokens/s" in md and "## Samples" in md
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the checkpoint is plain data: weights_only loading, and checkpoints reads it as a model
    payload = torch.load(out / "ckpt.pt", weights_only=True)
    assert payload["train"]["step"] == 24
    model, tok = checkpoints.load_model(out / "ckpt.pt")
    assert isinstance(model, transformer.GPT) and tok.vocab_size == model.config.vocab_size
    with pytest.raises(FileExistsError, match="already holds a run"):
        T.train(tiny(text_file), out, progress=False, log=quiet)


def test_train_and_the_auto_preset_follow_course_device(text_file, tmp_path, monkeypatch):
    """On a machine with CUDA, COURSE_DEVICE=cpu (set by the notebook execute command and nbval)
    makes both the preset choice and the training device the CPU."""
    fake_cuda = dataclasses.replace(
        course_device.Capabilities.probe(),
        cuda_available=True,
        cuda_device_count=1,
        cuda_name="NVIDIA H100 80GB HBM3",
        cuda_capability=(9, 0),
        cuda_bf16=True,
    )
    monkeypatch.setattr(course_device.Capabilities, "probe", classmethod(lambda cls: fake_cuda))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (2**30, 2**31))  # for the card
    monkeypatch.delenv("COURSE_COMPILE", raising=False)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert T.resolve_preset("auto") == T.resolve_preset("auto", "auto") == "cpu"
    cfg = tiny(text_file, max_steps=2, eval_every=2, warmup_steps=1, device="auto", compile="auto")
    r = T.train(cfg, tmp_path / "r", progress=False, log=quiet)
    assert r.card["device"]["plan"].startswith("device        cpu: forced by COURSE_DEVICE")
    assert r.card["environment"]["device"] == "cpu"
    monkeypatch.delenv("COURSE_DEVICE")
    assert T.resolve_preset("auto") == "gpu"


def test_stop_and_resume_is_bit_exact_with_dropout(text_file, tmp_path):
    cfg = tiny(text_file, dropout=0.1, grad_accum=2)
    T.train(cfg, tmp_path / "full", progress=False, log=quiet)
    calls = []

    def stop_after_ten():
        calls.append(1)
        return len(calls) >= 10

    r = T.train(cfg, tmp_path / "cut", progress=False, log=quiet, should_stop=stop_after_ten)
    assert r.stopped_early and r.steps == 10
    assert T.load_checkpoint(tmp_path / "cut" / "ckpt.pt")["train"]["step"] == 10
    r2 = T.train(cfg, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert r2.steps == 24
    assert_same_weights(state_of(tmp_path / "full"), state_of(tmp_path / "cut"))
    full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    cut = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if k not in CLOCKS} for x in rows
    ]
    assert strip(full) == strip(cut)  # the same losses, logged once each


CLOCKS = ("tokens_per_s", "elapsed_s", "train_s", "eval_s")  # what a clock decides


def test_eval_rows_separate_training_time_from_evaluation_time(text_file, tmp_path):
    cfg = tiny(text_file, max_steps=12, eval_every=4)
    T.train(cfg, tmp_path / "run", progress=False, log=quiet)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12]
    train_s = [r["train_s"] for r in evals]
    assert 0 < train_s[0] < train_s[1] < train_s[2]  # cumulative, growing
    for r in evals:  # training steps plus evaluations fit inside the wall clock
        assert r["eval_s"] > 0
    assert train_s[-1] + sum(r["eval_s"] for r in evals) <= evals[-1]["elapsed_s"]


def test_resume_refuses_another_configuration(text_file, tmp_path):
    T.train(tiny(text_file, max_steps=8), tmp_path / "r", progress=False, log=quiet)
    with pytest.raises(T.CheckpointError, match=r"different configuration \(fields \['lr'\]\)"):
        T.train(tiny(text_file, lr=1e-3), tmp_path / "r", resume=True, progress=False, log=quiet)


def lr_of(config: T.TrainConfig, step: int, horizon: int) -> float:
    return optim.lr_at(
        step,
        base_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=horizon,
        min_lr=config.min_lr,
    )


def test_resume_with_more_steps_keeps_the_schedule_it_started_with(text_file, tmp_path):
    cfg = tiny(text_file)  # 24 steps
    out = tmp_path / "r"
    T.train(cfg, out, progress=False, log=quiet, should_stop=stop_after(10))
    r = T.train(cfg.replace(max_steps=30), out, resume=True, progress=False, log=quiet)
    assert r.steps == 30
    lrs = {row["step"]: row["lr"] for row in r.history if row["kind"] == "train"}
    # the lr logged at step s is the one optimizer step s - 1 used
    for s in range(1, 31):
        assert lrs[s] == lr_of(cfg, s - 1, horizon=24), s
    assert lrs[25] == lrs[30] == cfg.min_lr  # past the horizon: the floor
    assert r.card["lr_schedule_steps"] == 24 and r.card["config"]["max_steps"] == 30
    assert T.load_checkpoint(out / "ckpt.pt")["train"]["lr_schedule_steps"] == 24
    assert "cosine over 24 steps" in (out / "run_card.md").read_text()


def test_resume_below_the_saved_step_is_refused(text_file, tmp_path):
    cfg = tiny(text_file)
    T.train(cfg, tmp_path / "r", progress=False, log=quiet, should_stop=stop_after(10))
    with pytest.raises(ValueError, match=r"TrainConfig.max_steps \(8\) is below the step \(10\)"):
        T.train(cfg.replace(max_steps=8), tmp_path / "r", resume=True, progress=False, log=quiet)
    assert T.load_checkpoint(tmp_path / "r" / "ckpt.pt")["train"]["step"] == 10


def test_a_shorter_resume_and_a_resume_at_the_end_keep_the_card_true(text_file, tmp_path):
    cfg = tiny(text_file)  # 24 steps
    out = tmp_path / "r"
    T.train(cfg, out, progress=False, log=quiet, should_stop=stop_after(10))
    # fewer steps than planned (but not fewer than done): the card says what happened
    r = T.train(cfg.replace(max_steps=12), out, resume=True, progress=False, log=quiet)
    card = json.loads((out / "run_card.json").read_text())
    assert card["steps"] == r.steps == 12 and card["resumed"]
    assert card["config"]["max_steps"] == 12 and card["lr_schedule_steps"] == 24
    evals = [row for row in r.history if row["kind"] == "eval"]
    assert [row["step"] for row in evals] == [8, 12]
    assert r.final_val_loss == card["final_val_loss"] == evals[-1]["val_loss"]
    # nothing left to train: the card stays as it was, and the result agrees with it
    before = (out / "run_card.json").read_bytes(), (out / "run_card.md").read_bytes()
    again = T.train(cfg.replace(max_steps=12), out, resume=True, progress=False, log=quiet)
    assert ((out / "run_card.json").read_bytes(), (out / "run_card.md").read_bytes()) == before
    assert again.steps == 12 and not again.stopped_early
    assert again.final_val_loss == card["final_val_loss"] is not None
    assert again.best_val_loss == card["best_val_loss"] and again.card == card
    # a card older than the checkpoint (a kill between the two writes) is written anew
    (out / "run_card.json").write_text(json.dumps({**card, "steps": 10}))
    T.train(cfg.replace(max_steps=12), out, resume=True, progress=False, log=quiet)
    assert json.loads((out / "run_card.json").read_text())["steps"] == 12


def test_resume_drops_a_partial_last_metrics_line(text_file, tmp_path):
    cfg = tiny(text_file)
    out = tmp_path / "r"
    T.train(cfg, out, progress=False, log=quiet, should_stop=stop_after(10))
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 11, "lo')  # a process killed mid-write
    r = T.train(cfg, out, resume=True, progress=False, log=quiet)
    assert r.steps == 24
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if x["kind"] == "train"] == list(range(1, 25))
    (out / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n{"kind": "tr\n{}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2 is not JSON"):
        run_card.read_metrics(out / "metrics.jsonl")


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(text_file, tmp_path):
    cfg = tiny(text_file, max_steps=400, checkpoint_every=20, eval_every=100, d_model=64)
    args = ["--preset", "ci", "--no-progress", *set_args(cfg)]
    ref = cli([*args, "--out", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_lib.train", *args, "--out", str(run)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists():
            steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines() if x]
            if steps and max(steps) >= 50:  # past two checkpoints, mid-way between others
                proc.send_signal(signal.SIGKILL)
                killed_at = max(steps)
                break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    saved = T.load_checkpoint(run / "ckpt.pt")["train"]["step"]
    assert 40 <= saved < 400 and saved % 20 == 0
    resumed = cli([*args, "--out", str(run), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(state_of(tmp_path / "ref"), state_of(run))
    assert not list(run.glob("*.tmp"))


def test_sigterm_writes_a_checkpoint_and_exits_130(text_file, tmp_path):
    cfg = tiny(text_file, max_steps=5000, eval_every=1000)
    run = tmp_path / "term"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_lib.train", "--preset", "ci", "--no-progress",
         *set_args(cfg), "--out", str(run)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run / "metrics.jsonl").exists():
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint after this step" in err
    step = T.load_checkpoint(run / "ckpt.pt")["train"]["step"]
    assert 0 < step < 5000


# ------------------------------------------------------------------------------ the saved state


def _parts(config: T.TrainConfig, text_file: Path, seed: int) -> train_state.Parts:
    """A model, optimizer and scaler for `config`, the optimizer after one step (its moments
    are not zero), from weights drawn with `seed`."""
    data = train_data.load_data(config)
    torch.manual_seed(seed)
    model = transformer.GPT(T.model_config(config, data.tokenizer.vocab_size))
    optimizer = T.configure_optimizer(model, config, fused=False)
    x, y = train_data.windows(data.train, torch.tensor([0, 100]), config.block_size)
    T.lm_loss(model, x, y).backward()
    optimizer.step()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return train_state.Parts(config, model, data.tokenizer, optimizer, scaler)


def test_the_train_state_round_trips_through_a_checkpoint(text_file, tmp_path):
    """save_run and restore_run mirror each other: the state, the weights, the optimizer's
    moments and the random-number state come back as they were saved."""
    cfg = tiny(text_file)
    saved = _parts(cfg, text_file, seed=1)
    state = train_state.TrainState(7, 7 * 128, 1.25, 2.5, lr_schedule_steps=24)
    path = tmp_path / T.CHECKPOINT_NAME
    torch.manual_seed(123)
    train_state.save_run(path, state, saved, ddp.Dist())
    expected_draw = torch.rand(5)  # what the generator gives after the save
    assert set(checkpoints.load_checkpoint(path)["train"]) == {
        *dataclasses.asdict(state),
        *("optimizer", "scaler", "rng", "world_size", "config"),
    }
    restored = _parts(cfg, text_file, seed=2)  # other weights, other moments, other RNG state
    back = train_state.restore_run(path, restored, ddp.Dist(), log=quiet)
    assert back == state and back is not state
    assert torch.equal(torch.rand(5), expected_draw)
    assert_same_weights(saved.model.state_dict(), restored.model.state_dict())
    for p_saved, p_restored in zip(
        saved.model.parameters(), restored.model.parameters(), strict=True
    ):
        a, b = saved.optimizer.state[p_saved], restored.optimizer.state[p_restored]
        assert torch.equal(a["exp_avg"], b["exp_avg"])
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_a_train_section_missing_a_field_is_refused_by_name(text_file, tmp_path):
    cfg = tiny(text_file)
    path = tmp_path / T.CHECKPOINT_NAME
    train_state.save_run(path, train_state.TrainState.start(cfg), _parts(cfg, text_file, 1),
                         ddp.Dist())  # fmt: skip
    payload = checkpoints.load_checkpoint(path)
    del payload["train"]["tokens_seen"]
    checkpoints.save_checkpoint(path, payload)  # a valid file, digest and all
    with pytest.raises(
        T.CheckpointError, match=r"ckpt.pt lacks the field\(s\) 'train.tokens_seen'"
    ):
        train_state.restore_run(path, _parts(cfg, text_file, 1), ddp.Dist(), log=quiet)


def test_torch_settings_hands_back_the_thread_count_after_a_failure():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="boom"):
        with T.torch_settings(wanted, tf32=False):
            assert torch.get_num_threads() == wanted
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------------ failures


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    text_file, tmp_path, monkeypatch
):
    real_loss, calls = T.lm_loss, []

    def loss_that_breaks(model, x, y):
        calls.append(1)
        loss = real_loss(model, x, y)
        return loss * float("nan") if len(calls) > 13 else loss

    monkeypatch.setattr(T, "lm_loss", loss_that_breaks)
    out = tmp_path / "nan"
    with pytest.raises(T.NonFiniteLoss, match=r"became nan at step 14.*last good checkpoint"):
        T.train(tiny(text_file, checkpoint_every=5), out, progress=False, log=quiet)
    payload = T.load_checkpoint(out / "ckpt.pt")
    assert payload["train"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values())


def test_a_stop_after_a_divergence_keeps_the_last_good_checkpoint(text_file, tmp_path, monkeypatch):
    """The loss turns NaN at step 13, between log steps; a stop request after step 13 must not
    write the broken weights over the step-10 checkpoint."""
    real_loss, calls = T.lm_loss, []

    def loss_that_breaks(model, x, y):
        calls.append(1)
        loss = real_loss(model, x, y)
        return loss * float("nan") if len(calls) > 12 else loss

    monkeypatch.setattr(T, "lm_loss", loss_that_breaks)
    out = tmp_path / "nan"
    cfg = tiny(text_file, checkpoint_every=5, log_every=100)
    with pytest.raises(T.NonFiniteLoss, match=r"became nan at step 13.*last good checkpoint"):
        T.train(cfg, out, progress=False, log=quiet, should_stop=stop_after(13))
    payload = T.load_checkpoint(out / "ckpt.pt")
    assert payload["train"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values())


def test_train_restores_the_tf32_setting(text_file, tmp_path, monkeypatch):
    """A plan with TF32 (a CUDA GPU from Ampere on) switches it on for the run only."""
    real_plan, switched = course_device.plan, []
    monkeypatch.setattr(
        course_device, "plan", lambda **kw: dataclasses.replace(real_plan(**kw), tf32=True)
    )
    real_set = course_device.set_tf32
    monkeypatch.setattr(
        course_device, "set_tf32", lambda on, **kw: (switched.append(on), real_set(on, **kw))[1]
    )

    def flags():
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision

    original = flags()
    two_steps = tiny(text_file, max_steps=2, eval_every=2, warmup_steps=1)
    try:
        T.train(two_steps, tmp_path / "r", progress=False, log=quiet)
        assert switched == [True]
        assert flags() == original
        real_set(False)  # "ieee" now; a run that fails must hand that back too
        before = flags()
        real_loss = T.lm_loss
        monkeypatch.setattr(T, "lm_loss", lambda *a: real_loss(*a) * float("nan"))
        with pytest.raises(T.NonFiniteLoss):
            T.train(two_steps, tmp_path / "y", progress=False, log=quiet)
        assert switched == [True, True]
        assert flags() == before
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = (
            original
        )


# ------------------------------------------------------------------------------ scale out


def test_torchrun_two_processes_match_one_process_step_by_step(text_file, tmp_path):
    """DDP with gloo, 2 ranks x 4 rows, against one process with the same 8-row global batch."""
    cfg = tiny(text_file, max_steps=12, eval_every=6)
    args = [*set_args(cfg), "--preset", "ci", "--no-progress"]
    one = cli([*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch, next to the Python that runs the tests"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    t0 = time.monotonic()
    two = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "course_lib.train", *args,
         "--out", str(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert time.monotonic() - t0 < 60

    def rows(name, kind, key):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x)[key] for x in lines if json.loads(x)["kind"] == kind]

    assert len(rows("two", "train", "loss")) == 12
    torch.testing.assert_close(
        torch.tensor(rows("two", "train", "loss"), dtype=torch.float64),
        torch.tensor(rows("one", "train", "loss"), dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )
    torch.testing.assert_close(
        torch.tensor(rows("two", "eval", "val_loss")),
        torch.tensor(rows("one", "eval", "val_loss")),
        rtol=1e-6,
        atol=0,
    )
    card = json.loads((tmp_path / "two" / "run_card.json").read_text())
    assert card["device"]["world_size"] == 2


def _children(pid: int) -> list[int]:
    """The ids of a process's children (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _rank_of(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"RANK="):
                return int(item[5:])
    return None


def test_sigterm_to_one_torchrun_worker_stops_every_rank_at_the_same_step(text_file, tmp_path):
    """The ranks agree on stopping: a signal that reaches one worker only (here rank 1, which
    writes no files) makes both write one checkpoint at the same step and exit as a stop,
    with no rank left waiting in a collective; --resume continues the run."""
    cfg = tiny(text_file, max_steps=5000, eval_every=1000)
    args = [*set_args(cfg), "--preset", "ci", "--no-progress"]
    run = tmp_path / "ddp"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "course_lib.train", *args,
         "--out", str(run)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = run / "metrics.jsonl"
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        workers = {_rank_of(c): c for c in _children(proc.pid)}
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGTERM)
        out, err = proc.communicate(timeout=30)  # a rank left in a collective hangs here
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    step = T.load_checkpoint(run / "ckpt.pt")["train"]["step"]
    assert 3 <= step < 5000
    assert f"stopped at step {step}; checkpoint written" in out  # rank 0 stopped there too
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(x["step"] for x in rows) == step
    # torchrun's report: every worker returned 130 (a stop); none hung, crashed or was killed
    assert proc.returncode != 0
    assert re.findall(r"exitcode\s+: (-?\d+) \(pid", err) == ["130", "130"], err[-3000:]
    resumed = cli([*args, "--out", str(run), "--resume", "--max-steps", str(step + 2)])
    assert resumed.returncode == 0, resumed.stderr
    assert T.load_checkpoint(run / "ckpt.pt")["train"]["step"] == step + 2


# ------------------------------------------------------------------------------ bare machine


def test_import_and_a_run_need_only_torch_and_numpy(text_file, tmp_path):
    """With tqdm, matplotlib, regex, jieba and the Hugging Face packages hidden, the trainer
    still imports and runs (no bar, no plot), as on a bare GPU machine."""
    script = textwrap.dedent(
        f"""
        import sys
        BLOCKED = ("tqdm", "matplotlib", "regex", "jieba", "transformers", "tokenizers",
                   "sentence_transformers", "safetensors", "sklearn", "scipy", "pandas")
        for name in BLOCKED:  # `import name` now fails as if the package were not installed
            sys.modules[name] = None
        from course_lib import train as T
        cfg = T.TrainConfig(data={str(text_file)!r}, n_layers=1, n_heads=2, d_model=16, d_ff=32,
                            block_size=8, batch_size=4, max_steps=3, warmup_steps=1,
                            eval_every=3, eval_windows=4, sample_tokens=5, device="cpu",
                            compile="0")
        r = T.train(cfg, {str(tmp_path / "bare")!r}, progress=True)
        assert r.steps == 3 and r.card["loss_plot"] is None, r.card
        print("ok")
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------ notebook 09
# The answer key (course_lib.exercises.nb09) is what each check cell calls: a right answer passes,
# the stub says "not yet" and each named mistake is recognised, tried here without the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


def test_exercise_lr_schedule_wrong_answers_are_named():
    def lr_schedule(step, config):
        return optim.lr_at(
            step,
            base_lr=config.lr,
            warmup_steps=config.warmup_steps,
            total_steps=config.max_steps,
            min_lr=config.min_lr,
        )

    def stub(step, config):
        raise NotImplementedError

    def to_zero(step, config):
        return optim.lr_at(
            step,
            base_lr=config.lr,
            warmup_steps=config.warmup_steps,
            total_steps=config.max_steps,
        )

    def on_top(step, config):
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        p = (min(step, config.max_steps) - config.warmup_steps) / (
            config.max_steps - config.warmup_steps
        )
        return config.min_lr + 0.5 * config.lr * (1 + math.cos(math.pi * p))

    def from_zero(step, config):
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        p = min(step, config.max_steps) / config.max_steps
        lo = config.min_lr
        return lo + 0.5 * (config.lr - lo) * (1 + math.cos(math.pi * p))

    right, not_yet, zero, top, start = _verdicts(
        nb09.lr_schedule, lr_schedule, stub, to_zero, on_top, from_zero
    )
    assert right == "lr_schedule: all 7 cases pass. Well done!"
    assert not_yet.startswith("stub: not yet.")
    assert "hint: this looks like a decay to zero" in zero
    assert "hint: this looks like the floor added on top" in top
    assert "hint: this looks like a cosine that starts at step 0" in start


def test_exercise_lr_schedule_key_is_the_trainers_schedule():
    # the key passes the four fields the schedule reads; the trainer's own learning_rate, on a
    # TrainConfig with those fields, passes every case
    def trainer_schedule(step, fields):
        config = T.preset("ci", **dataclasses.asdict(fields))
        state = dataclasses.replace(T.TrainState.start(config), step=step)
        return T.learning_rate(config, state)

    verdict = nb09.lr_schedule(trainer_schedule, quiet=True)
    assert verdict.passed, verdict.message


def test_exercise_accumulation_wrong_answers_are_named():
    def learner(scale_by_k=True, zero_each=False, reduction="mean"):
        def accumulated_gradient(w, x, y, micro_batches):
            w = w.detach().clone().requires_grad_(True)
            for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
                if zero_each:
                    w.grad = None
                loss = F.cross_entropy(xb @ w, yb, reduction=reduction)
                (loss / micro_batches if scale_by_k else loss).backward()
            return w.grad

        return accumulated_gradient

    def stub(w, x, y, micro_batches):
        raise NotImplementedError

    right, not_yet, summed, zeroed, sum_reduction = _verdicts(
        nb09.accumulated_gradient,
        learner(),
        stub,
        learner(scale_by_k=False),
        learner(zero_each=True),
        learner(reduction="sum"),
    )
    assert right == "accumulated_gradient: all 4 cases pass. Well done!"
    assert not_yet.startswith("stub: not yet.")
    assert "hint: this looks like micro-batch losses not divided by their number" in summed
    assert "hint: this looks like gradients zeroed inside the loop" in zeroed
    assert "hint: this looks like a summed loss" in sum_reduction


def test_auto_preset_follows_the_device():
    assert T.resolve_preset("auto", "cpu") == "cpu"
    assert T.resolve_preset("ci") == "ci"


# ------------------------------------------------------------------------------ notebook 08
# Notebook 08's loop exercise (course_lib.exercises.nb08.train_steps) checks a learner's training
# loop against the trainer's step bit for bit. The key writes that step out (it does not import
# the trainer); here the trainer's own functions pass it as a learner's loop, a run of train() is
# those functions step by step, and each named mistake is recognised.


def _trainer_steps(model, batches, config, fused=False):
    """The trainer's learning_rate, configure_optimizer and optimizer_step, one step a batch."""
    if not isinstance(config, T.TrainConfig):  # the key's StepConfig: a TrainConfig's fields
        config = T.preset("ci", **dataclasses.asdict(config))
    plan = course_device.with_dtype(course_device.plan(device="cpu", compile="0"), "float32")
    optimizer = T.configure_optimizer(model, config, fused)
    scaler = course_device.grad_scaler(plan)
    state = T.TrainState.start(config)
    losses = []
    for x, y in batches:
        lr = T.learning_rate(config, state)
        loss = T.optimizer_step(model, optimizer, scaler, [(x, y)], lr, config.grad_clip, plan)
        losses.append(loss.item())
        state.step += 1
    return losses


def test_exercise_train_steps_key_is_the_trainers_step():
    verdict = nb08.train_steps(_trainer_steps, quiet=True)
    assert verdict.message == "_trainer_steps: all 3 cases pass. Well done!"


def test_a_run_of_train_is_the_trainers_step_function_by_function(text_file, tmp_path):
    # train() against its model, optimizer (its own choice of AdamW kernel) and batches driven
    # by hand: the same weights, bit for bit
    cfg = tiny(text_file, max_steps=5, warmup_steps=2, eval_every=5, grad_clip=0.5)
    T.train(cfg, tmp_path / "run", progress=False, log=quiet)
    data = train_data.load_data(cfg)
    plan = course_device.with_dtype(course_device.plan(device="cpu", compile="0"), "float32")
    torch.manual_seed(cfg.seed)
    model = transformer.GPT(T.model_config(cfg, data.tokenizer.vocab_size))
    rows = train_data.rank_rows(cfg.batch_size, 1, 0, cfg.grad_accum)
    batches = [train_data.micro_batches(data, cfg, s, rows)[0] for s in range(cfg.max_steps)]
    with T.torch_settings(cfg.threads, tf32=False):
        _trainer_steps(model, batches, cfg, fused=course_device.fused_adamw(plan))
    assert_same_weights(state_of(tmp_path / "run"), model.state_dict())


TRAIN_STEPS = """params = list(model.parameters())
groups = [
    {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
    {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
]
opt = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))
losses = []
for step, (x, y) in enumerate(batches):
    lr = optim.lr_at(step, base_lr=config.lr, warmup_steps=config.warmup_steps,
                     total_steps=config.max_steps, min_lr=config.min_lr)
    for group in opt.param_groups:
        group["lr"] = lr
    logits = model(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    opt.step()
    losses.append(loss.item())
return losses
"""


def _train_steps(body: str):
    """The loop a learner who wrote `body` has: train_steps(model, batches, config)."""
    scope = {"torch": torch, "F": F, "optim": optim}
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    exec(f"def train_steps(model, batches, config):\n{lines}", scope)  # this test's own source
    return scope["train_steps"]


def _bug(old: str, new: str) -> str:
    assert old in TRAIN_STEPS, old
    return TRAIN_STEPS.replace(old, new)


def test_exercise_train_steps_wrong_answers_are_named():
    clip = "    if config.grad_clip:\n        torch.nn.utils.clip_grad_norm_("
    step, zero = "    opt.step()\n", "    opt.zero_grad()\n"
    schedule = TRAIN_STEPS[TRAIN_STEPS.index("    lr = optim") : TRAIN_STEPS.index("    logits")]
    bodies = {
        "right": TRAIN_STEPS,
        "zeroed after the step": _bug(zero, "").replace(step, step + zero),
        "stub": "raise NotImplementedError",
        "gradients never zeroed": _bug(zero, ""),
        "clipping after the step": _bug(
            clip + "model.parameters(), config.grad_clip)\n    opt.step()\n",
            "    opt.step()\n" + clip + "model.parameters(), config.grad_clip)\n",
        ),
        "a constant learning rate": _bug(schedule, ""),
        "the schedule one step late": _bug("lr_at(step,", "lr_at(step + 1,"),
        "this notebook's set_lr schedule": _bug(
            "warmup_steps=config.warmup_steps,\n                     total_steps=config.max_steps, "
            "min_lr=config.min_lr",
            "warmup_steps=max(1, config.max_steps // 10),\n"
            "                     total_steps=config.max_steps, min_lr=config.lr / 10",
        ),
        "weight decay on every parameter": _bug(
            "opt = torch.optim.AdamW(groups,",
            'opt = torch.optim.AdamW([{"params": params, "weight_decay": config.weight_decay}],',
        ),
        "AdamW's default betas": _bug(", betas=(config.beta1, config.beta2)", ""),
        "a summed loss": _bug("y.flatten())", 'y.flatten(), reduction="sum")'),
        "clipping with grad_clip=0": _bug(clip, "    torch.nn.utils.clip_grad_norm_("),
        "cross-entropy on (B, V, T) logits": _bug(
            "logits.flatten(0, 1), y.flatten()", "logits.transpose(1, 2), y"
        ),
        "a fused AdamW": _bug("config.beta2))", "config.beta2), fused=True)"),
        "clipping the parameters in another order": _bug(
            "clip_grad_norm_(model.parameters(),",
            'clip_grad_norm_([p for g in groups for p in g["params"]],',
        ),
    }
    verdicts = {name: nb08.train_steps(_train_steps(b), quiet=True) for name, b in bodies.items()}
    assert verdicts["right"].message == "train_steps: all 3 cases pass. Well done!"
    assert verdicts["zeroed after the step"].passed  # as the trainer does: the same bits
    assert verdicts["stub"].status == "not yet"
    for name in list(bodies)[3:]:
        assert verdicts[name].status == "wrong", name
        assert f"hint: this looks like {name}:" in verdicts[name].message, (name, verdicts[name])
    # grad_clip=0 shows only in the case that sets it
    assert "2 of 3 cases pass" in verdicts["clipping with grad_clip=0"].message
