"""dtype="fast": a few steps of the run's model timed in float32 and in the low-precision type at
the start (here with a mocked timer), the low-precision type kept only when >= 10% faster, the
choice saved in the checkpoint and kept by a resume, and told with its reason in the run card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import quiet, tiny

from course_lib import ddp, train_state
from course_lib import device as course_device
from course_lib import train as T


def fake_clock(durations: list[float]):
    """A clock read twice around each timed call: the k-th call seems to take durations[k]."""
    readings, now = [], 100.0
    for d in durations:
        readings += [now, now + d]
        now += d + 1.0
    it = iter(readings)
    return lambda: next(it)


def mock_timer(monkeypatch, float32: float, low: float, rounds: int = T.FAST_DTYPE_ROUNDS):
    """choose_fast_dtype's timings, from a fake clock: each round times float32, then the other."""
    real = T.time_steps
    seen = []

    def timed(steps):
        seen.append(list(steps))
        return real(steps, clock=fake_clock([float32, low] * rounds))

    monkeypatch.setattr(T, "time_steps", timed)
    return seen


def no_timing(monkeypatch):
    def refuse(steps):
        raise AssertionError("timed again: the choice should have been kept")

    monkeypatch.setattr(T, "time_steps", refuse)


# ------------------------------------------------------------------------------ the rule


def test_time_steps_interleaves_the_candidates_and_takes_medians():
    calls = []
    steps = {"float32": lambda: calls.append("f"), "bfloat16": lambda: calls.append("b")}
    # timed rounds: float32 takes 3, 1, 2 (median 2); bfloat16 takes 9, 1, 1 (median 1)
    seconds = T.time_steps(steps, rounds=3, warmup=2, clock=fake_clock([3, 9, 1, 1, 2, 1]))
    assert seconds == {"float32": 2.0, "bfloat16": 1.0}
    assert calls == ["f", "b"] * 5  # 2 untimed rounds, then 3 timed ones, in turn


@pytest.mark.parametrize(
    ("float32", "low", "chosen", "said"),
    [
        (0.100, 0.080, "bfloat16", "bfloat16 is 25% faster (at least 10%)"),
        (1.1, 1.0, "bfloat16", "bfloat16 is 10% faster (at least 10%)"),  # the boundary
        (0.105, 0.100, "float32", "bfloat16 is only 5% faster, under the 10% it must gain"),
        (0.077, 0.079, "float32", "bfloat16 is 3% slower, under the 10% it must gain"),
    ],
)
def test_the_low_precision_type_must_be_at_least_10_percent_faster(float32, low, chosen, said):
    dtype, reason = T.decide_fast_dtype({"float32": float32, "bfloat16": low})
    assert dtype == chosen
    assert said in reason and reason.startswith("dtype='fast', timed at the start")
    assert f"{low * 1e3:.1f} ms in bfloat16 and {float32 * 1e3:.1f} ms in float32" in reason


def _setup(text_file, **changes):
    cfg = tiny(text_file, dtype="fast", **changes)
    data = T.load_data(cfg)
    rows = T.rank_rows(cfg.batch_size, 1, 0, cfg.grad_accum)
    return cfg, data, rows, T._device_plan(cfg, ddp.Dist())


@pytest.mark.parametrize(
    ("float32", "low", "expected"), [(0.1, 0.05, torch.bfloat16), (0.1, 0.12, None)]
)
def test_choose_fast_dtype_times_both_and_keeps_the_faster(
    text_file, monkeypatch, float32, low, expected
):
    cfg, data, rows, plan = _setup(text_file)
    seen = mock_timer(monkeypatch, float32, low)
    chosen, choice = T.choose_fast_dtype(cfg, data, plan, rows, ddp.Dist())
    assert seen == [["float32", "bfloat16"]]  # on the CPU: bfloat16, whatever the CPU flags say
    assert chosen.autocast_dtype is expected and not chosen.grad_scaler
    assert chosen.dtype_reason == choice["reason"] and "timed at the start" in choice["reason"]
    assert choice["device"] == "cpu"
    assert choice["seconds"] == pytest.approx({"float32": float32, "bfloat16": low})
    assert (chosen.device, chosen.compile) == (plan.device, plan.compile)


def test_other_dtypes_are_not_timed(text_file, monkeypatch):
    no_timing(monkeypatch)
    for dtype in ("auto", "float32", "bfloat16"):
        cfg, data, rows, plan = _setup(text_file)
        cfg = cfg.replace(dtype=dtype)
        plan = T._device_plan(cfg, ddp.Dist())
        assert T.choose_fast_dtype(cfg, data, plan, rows, ddp.Dist()) == (plan, None)


def test_the_real_timer_measures_real_steps(text_file):
    cfg, data, rows, plan = _setup(text_file)
    chosen, choice = T.choose_fast_dtype(cfg, data, plan, rows, ddp.Dist())
    assert set(choice["seconds"]) == {"float32", "bfloat16"}
    assert all(0 < s < 5 for s in choice["seconds"].values())
    assert choice["dtype"] in ("float32", "bfloat16")


def _caps(**kw) -> course_device.Capabilities:
    base = dict(torch_version="2.13.0", platform="linux", python_version=(3, 12))
    return course_device.Capabilities(**base, **kw)


GPU = dict(cuda_available=True, cuda_device_count=1, triton_available=True, dynamo_supported=True)


@pytest.mark.parametrize(
    ("caps", "low", "scaler"),
    [
        (
            _caps(**GPU, cuda_name="NVIDIA H100", cuda_capability=(9, 0), cuda_bf16=True),
            "bfloat16",
            False,
        ),
        (_caps(**GPU, cuda_name="Tesla T4", cuda_capability=(7, 5)), "float16", True),
    ],
)
def test_on_a_gpu_the_candidate_is_the_gpus_own_type(text_file, monkeypatch, caps, low, scaler):
    cfg, data, rows, _ = _setup(text_file)
    gpu_plan = course_device.with_dtype(course_device.decide(caps), "fast")
    built = []
    monkeypatch.setattr(T, "_one_step", lambda c, d, p, r: built.append(p) or (lambda: None))
    mock_timer(monkeypatch, 0.1, 0.05)
    chosen, choice = T.choose_fast_dtype(cfg, data, gpu_plan, rows, ddp.Dist())
    assert [p.autocast_dtype for p in built] == [None, getattr(torch, low)]
    assert choice["dtype"] == low and chosen.grad_scaler is scaler
    assert chosen.tf32 == gpu_plan.tf32 and chosen.compile == gpu_plan.compile


def test_mps_keeps_float32_without_timing(text_file, monkeypatch):
    cfg, data, rows, _ = _setup(text_file)
    mps = course_device.decide(_caps(mps_built=True, mps_available=True), device="mps")
    no_timing(monkeypatch)
    chosen, choice = T.choose_fast_dtype(cfg, data, mps, rows, ddp.Dist())
    assert chosen.autocast_dtype is None and choice["dtype"] == "float32"


# ------------------------------------------------------------------------------ in a run


def test_the_choice_is_saved_kept_by_a_resume_and_told_in_the_card(
    text_file, tmp_path, monkeypatch
):
    cfg = tiny(text_file, dtype="fast")
    mock_timer(monkeypatch, 0.1, 0.075)  # bfloat16 a third faster
    full = T.train(cfg, tmp_path / "full", progress=False, log=quiet)
    assert full.card["device"]["dtype"] == "bfloat16"
    assert full.card["device"]["dtype_seconds"] == pytest.approx(
        {"float32": 0.1, "bfloat16": 0.075}
    )
    saved = T.load_checkpoint(tmp_path / "full" / T.CHECKPOINT_NAME)["train"]["dtype_choice"]
    assert saved["dtype"] == "bfloat16" and saved["device"] == "cpu"
    md = (tmp_path / "full" / "run_card.md").read_text()
    assert "- dtype bfloat16: dtype='fast', timed at the start" in md and "33% faster" in md

    cut = T.train(cfg, tmp_path / "cut", progress=False, log=quiet, should_stop=lambda: True)
    assert cut.stopped_early and cut.steps == 1
    no_timing(monkeypatch)  # a resume must not time again (this machine might answer otherwise)
    again = T.train(cfg, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert again.card["device"]["dtype"] == "bfloat16"
    assert again.card["device"]["dtype_reason"].endswith("; kept from the run's start")
    a = T.load_checkpoint(tmp_path / "full" / T.CHECKPOINT_NAME)["state_dict"]
    b = T.load_checkpoint(tmp_path / "cut" / T.CHECKPOINT_NAME)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run trained in bfloat16 too
    assert json.loads((tmp_path / "cut" / "run_card.json").read_text())["steps"] == 24


def test_timing_does_not_change_what_the_run_computes(text_file, tmp_path, monkeypatch):
    """float32 chosen: the same weights as a dtype="float32" run (the timed steps ran on
    throwaway models; the run's model is seeded afterwards)."""
    mock_timer(monkeypatch, 0.1, 0.2)
    fast = T.train(
        tiny(text_file, dtype="fast", max_steps=8), tmp_path / "f", progress=False, log=quiet
    )
    plain = T.train(
        tiny(text_file, dtype="float32", max_steps=8), tmp_path / "p", progress=False, log=quiet
    )
    assert (
        fast.card["device"]["dtype"] == "float32"
        and "slower" in fast.card["device"]["dtype_reason"]
    )
    assert plain.card["device"]["dtype_seconds"] is None
    a = T.load_checkpoint(tmp_path / "f" / T.CHECKPOINT_NAME)["state_dict"]
    b = T.load_checkpoint(tmp_path / "p" / T.CHECKPOINT_NAME)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_choice_made_on_another_kind_of_device_is_timed_again(text_file, monkeypatch):
    cfg, data, rows, plan = _setup(text_file)
    saved = {"device": "cuda", "dtype": "bfloat16", "reason": "on a GPU", "seconds": {}}
    monkeypatch.setattr(train_state, "saved_dtype_choice", lambda path: saved)
    mock_timer(monkeypatch, 0.1, 0.3)
    chosen, choice = T.choose_fast_dtype(cfg, data, plan, rows, ddp.Dist(), True, Path("x.pt"))
    assert choice["device"] == "cpu" and chosen.autocast_dtype is None


def test_the_ci_preset_and_the_reference_model_never_time_their_dtype():
    from course_lib import models

    cpu = course_device.plan(device="cpu", compile="0")
    assert T.preset("ci").dtype != "fast"
    assert course_device.with_dtype(cpu, T.preset("ci").dtype).autocast_dtype is None  # float32
    assert models.spec("reference").overrides["dtype"] == "float32"
    assert T.preset("cpu").dtype == "fast"  # the preset the benchmark measures: timed
