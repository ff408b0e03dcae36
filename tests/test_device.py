"""course_lib.device: the decision table on mocked machines, overrides, seeding, bad input."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib import device


def caps(**kw):
    base = dict(
        torch_version="2.13.0",
        platform="linux",
        python_version=(3, 11),
        dynamo_supported=True,
    )
    return device.Capabilities(**{**base, **kw})


CUDA_BF16 = caps(
    cuda_available=True,
    cuda_device_count=2,
    cuda_name="H100",
    cuda_capability=(9, 0),
    cuda_bf16=True,
    triton_available=True,
)
CUDA_FP16 = caps(
    cuda_available=True,
    cuda_device_count=1,
    cuda_name="T4",
    cuda_capability=(7, 5),
    cuda_bf16=False,
    triton_available=True,
)
MPS_NEW = caps(platform="darwin", mps_built=True, mps_available=True)
MPS_OLD = caps(torch_version="2.8.0", platform="darwin", mps_built=True, mps_available=True)
CPU_ONLY = caps()


# --------------------------------------------------------------------------- decision table


@pytest.mark.parametrize(
    "machine, dev, dtype, scaler, compile_, tf32",
    [
        (CUDA_BF16, "cuda", torch.bfloat16, False, True, True),
        (CUDA_FP16, "cuda", torch.float16, True, True, False),
        (MPS_NEW, "mps", None, False, False, False),
        (MPS_OLD, "cpu", None, False, False, False),
        (CPU_ONLY, "cpu", None, False, False, False),
    ],
    ids=["cuda-bf16", "cuda-fp16-scaler", "mps", "mps-old-torch", "cpu"],
)
def test_decision_table(machine, dev, dtype, scaler, compile_, tf32):
    p = device.decide(machine)
    assert (p.device, p.autocast_dtype, p.grad_scaler, p.compile, p.tf32) == (
        dev,
        dtype,
        scaler,
        compile_,
        tf32,
    )
    assert p.reason and p.dtype_reason and p.compile_reason


def test_reasons_say_why():
    assert "H100" in device.decide(CUDA_BF16).reason
    assert "2.9" in device.decide(MPS_NEW).reason
    old = device.decide(MPS_OLD)
    assert "2.8.0 < 2.9" in old.reason and "CPU" in old.reason
    assert device.decide(CPU_ONLY).reason == "no CUDA or Apple MPS device found"


def test_mps_gate_follows_the_torch_version():
    for version, expected in [("2.8.1", "cpu"), ("2.9.0", "mps"), ("2.10.0a0+git", "mps")]:
        m = caps(torch_version=version, platform="darwin", mps_built=True, mps_available=True)
        assert device.decide(m).device == expected, version


def test_forced_devices():
    assert device.decide(CUDA_BF16, device="cpu").device == "cpu"
    assert device.decide(CUDA_BF16, device="cuda:1").device == "cuda:1"
    assert device.decide(CUDA_BF16, device=" CUDA ").device == "cuda"
    forced_old_mps = device.decide(MPS_OLD, device="mps")
    assert forced_old_mps.device == "mps" and "known MPS bugs" in forced_old_mps.reason


@pytest.mark.parametrize(
    "machine, request_, message",
    [
        (CPU_ONLY, "cuda", "CUDA is not available"),
        (CUDA_BF16, "cuda:2", "only 2 CUDA device(s)"),
        (CPU_ONLY, "mps", "Apple MPS is not available (it is not built into this torch)"),
        (CPU_ONLY, "tpu", "device must be one of auto, cpu, cuda, cuda:N, mps; got 'tpu'"),
        (CPU_ONLY, "cuda:x", "device must be one of"),
    ],
)
def test_forced_device_the_machine_lacks_is_an_error(machine, request_, message):
    with pytest.raises(ValueError, match="device") as e:
        device.decide(machine, device=request_)
    assert message in str(e.value)


def test_non_string_device_is_a_type_error():
    with pytest.raises(TypeError, match="device must be a string"):
        device.decide(CPU_ONLY, device=0)


def test_caps_must_be_capabilities():
    with pytest.raises(TypeError, match="caps must be a Capabilities"):
        device.decide({"cuda_available": True})


@pytest.mark.parametrize(
    "machine, expected_reason",
    [
        (caps(**{**CUDA_BF16.__dict__, "platform": "win32"}), "Linux only"),
        (caps(**{**CUDA_BF16.__dict__, "triton_available": False}), "not installed"),
        (caps(**{**CUDA_BF16.__dict__, "cuda_capability": (6, 1)}), "capability >= 7.0"),
        (caps(**{**CUDA_BF16.__dict__, "dynamo_supported": False}), "does not support"),
        (CPU_ONLY, "off by default on the CPU and MPS"),
    ],
)
def test_compile_stays_off_where_it_does_not_pay(machine, expected_reason):
    p = device.decide(machine)
    assert p.compile is False and expected_reason in p.compile_reason


def test_compile_override():
    assert device.decide(CPU_ONLY, compile="1").compile is True
    assert device.decide(CUDA_BF16, compile=False).compile is False
    assert device.decide(CUDA_BF16, compile="auto").compile is True
    with pytest.raises(ValueError, match="compile must be one of auto, 0, 1; got 'maybe'"):
        device.decide(CPU_ONLY, compile="maybe")
    no_dynamo = caps(dynamo_supported=False, python_version=(3, 14))
    with pytest.raises(ValueError, match="does not support Python 3.14"):
        device.decide(no_dynamo, compile=True)


# --------------------------------------------------------------------------- this machine


def test_plan_on_this_machine_reads_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("COURSE_COMPILE", raising=False)
    p = device.plan()
    assert p.capabilities == device.Capabilities.probe()
    assert p == device.decide(device.Capabilities.probe())
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert device.plan().reason.startswith("forced by COURSE_DEVICE")


def test_plan_uses_probed_capabilities(monkeypatch):
    monkeypatch.setattr(device.Capabilities, "probe", classmethod(lambda cls: CUDA_FP16))
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("COURSE_COMPILE", raising=False)
    p = device.plan()
    assert (p.device, p.autocast_dtype, p.grad_scaler) == ("cuda", torch.float16, True)
    monkeypatch.setenv("COURSE_COMPILE", "0")
    assert device.plan().compile is False


def test_plan_auto_arguments_defer_to_the_environment(monkeypatch):
    """'auto' (a TrainConfig's default) means what COURSE_DEVICE / COURSE_COMPILE say, else
    detection; only an explicit choice overrides the environment."""
    monkeypatch.setattr(device.Capabilities, "probe", classmethod(lambda cls: CUDA_BF16))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("COURSE_COMPILE", "1")
    p = device.plan(device="auto", compile="auto")
    assert (p.device, p.compile) == ("cpu", True)
    assert p.reason.startswith("forced by COURSE_DEVICE")
    p = device.plan(device="cuda:1", compile="0")
    assert (p.device, p.compile) == ("cuda:1", False)
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.delenv("COURSE_COMPILE")
    assert device.plan(device="AUTO", compile="auto").device == "cuda"


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("COURSE_DEVICE", "gpu", "environment variable COURSE_DEVICE must be one of"),
        ("COURSE_COMPILE", "fast", "environment variable COURSE_COMPILE must be one of"),
    ],
)
def test_bad_environment_variables_are_named(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        device.plan()


def test_autocast_context():
    cpu = device.decide(CPU_ONLY)
    with cpu.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    bf16_cpu = device.DevicePlan(
        device="cpu",
        reason="test",
        autocast_dtype=torch.bfloat16,
        dtype_reason="test",
        grad_scaler=False,
        compile=False,
        compile_reason="test",
        tf32=False,
    )
    with bf16_cpu.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert bf16_cpu.type == "cpu" and bf16_cpu.torch_device == torch.device("cpu")
    assert device.decide(CUDA_BF16, device="cuda:1").type == "cuda"


def test_summary_mentions_every_decision():
    text = device.decide(CUDA_FP16).summary()
    for word in ("cuda", "float16", "grad scaler   yes", "torch.compile on", "TF32 matmuls  off"):
        assert word in text


# --------------------------------------------------------------------------- torch versions


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2.13.0+cpu", (2, 13, 0)),
        ("2.9.0a0+git1234", (2, 9, 0)),
        ("2.5", (2, 5, 0)),
        (" 2.10.1 ", (2, 10, 1)),
    ],
)
def test_torch_version_tuple(text, expected):
    assert device.torch_version_tuple(text) == expected


def test_torch_version_tuple_defaults_to_installed_torch():
    assert device.torch_version_tuple() == device.torch_version_tuple(torch.__version__)


@pytest.mark.parametrize("bad, exc", [("banana", ValueError), ("", ValueError), (2.13, TypeError)])
def test_torch_version_tuple_bad_input(bad, exc):
    with pytest.raises(exc, match="version"):
        device.torch_version_tuple(bad)


def test_native_bf16_on_old_torch_without_the_emulation_argument(monkeypatch):
    # torch < 2.3: is_bf16_supported() takes no argument and reports native support only.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device._native_bf16() is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert device._native_bf16() is False


def test_native_bf16_asks_without_emulation(monkeypatch):
    calls = []

    def fake(including_emulation=True):
        calls.append(including_emulation)
        return including_emulation  # an old GPU: only emulated bfloat16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", fake)
    assert device._native_bf16() is False and calls == [False]


# --------------------------------------------------------------------------- seeding


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert device.seed_everything(123) == 123
    first = draw()
    device.seed_everything(np.int64(123))
    assert draw() == first
    device.seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize(
    "bad, exc, message",
    [
        (-1, ValueError, r"seed must be in \[0, 2\*\*32\)"),
        (2**32, ValueError, r"seed must be in"),
        (1.5, TypeError, "seed must be an int, got float"),
        ("7", TypeError, "seed must be an int, got str"),
        (True, TypeError, "seed must be an int, got bool"),
    ],
)
def test_seed_everything_bad_input(bad, exc, message):
    with pytest.raises(exc, match=message):
        device.seed_everything(bad)


def test_seed_everything_deterministic_flag():
    try:
        device.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


# --------------------------------------------------------------------------- description


def test_describe_environment():
    env = device.describe_environment(device.decide(device.Capabilities.probe()))
    for key in ("course_lib", "python", "torch", "numpy", "memory", "device", "torch.compile"):
        assert env[key], key
    assert env["torch"] == torch.__version__
    assert "GiB total" in env["memory"]


def test_describe_environment_bad_input():
    with pytest.raises(TypeError, match="device_plan must be a DevicePlan"):
        device.describe_environment("cuda")


def test_module_prints_the_plan_in_a_terminal():
    out = subprocess.run(
        [sys.executable, "-m", "course_lib.device"],
        capture_output=True,
        text=True,
        env={**os.environ, "COURSE_DEVICE": "cpu"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "device          cpu" in out.stdout
    assert "forced by COURSE_DEVICE" in out.stdout


# --------------------------------------------------------------------------- trainer settings


@pytest.fixture
def tf32_flags_restored():
    saved = (
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
    )
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


@pytest.mark.parametrize(
    "version, api",
    [("2.5.1", "allow_tf32"), ("2.8.0", "allow_tf32"), ("2.9.0", "fp32_precision"),
     ("2.13.0+cpu", "fp32_precision")],
)  # fmt: skip
def test_tf32_switch_follows_the_torch_version(version, api, tf32_flags_restored):
    assert device.tf32_api(version) == api
    assert device.set_tf32(True, torch_version=version) == api
    if api == "fp32_precision":
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    else:
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.backends.cudnn.allow_tf32 is True
    device.set_tf32(False, torch_version=version)
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_tf32_settings_are_read_and_restored(tf32_flags_restored):
    before = device.tf32_settings()
    assert before["api"] == device.tf32_api()
    device.set_tf32(True)
    assert device.tf32_settings()["matmul"] in ("tf32", True)
    assert device.tf32_settings() != before
    device.restore_tf32(before)
    assert device.tf32_settings() == before
    with pytest.raises(ValueError, match="settings must come from tf32_settings"):
        device.restore_tf32({"matmul": "tf32"})


def test_fused_adamw_and_grad_scaler_follow_the_plan():
    bf16, fp16, cpu = (device.decide(c) for c in (CUDA_BF16, CUDA_FP16, CPU_ONLY))
    assert device.fused_adamw(bf16) and device.fused_adamw(fp16) and device.fused_adamw(cpu)
    assert not device.fused_adamw(cpu, torch_version="2.3.1")  # no CPU kernel before 2.4
    assert device.fused_adamw(cpu, torch_version="2.4.0")
    assert not device.fused_adamw(device.decide(MPS_NEW))
    assert not device.grad_scaler(cpu).is_enabled()
    assert device.decide(CUDA_FP16).grad_scaler and not bf16.grad_scaler


def test_datasheet_peaks():
    assert device.datasheet_peak_flops("NVIDIA H200", "bfloat16") == 989e12
    assert device.datasheet_peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert device.datasheet_peak_flops("NVIDIA A100-SXM4-80GB", "tf32") == 156e12
    assert device.datasheet_peak_flops("Tesla T4", "bfloat16") is None
    assert device.datasheet_peak_flops(None, "bfloat16") is None


def test_measured_matmul_peak_is_plausible():
    flops = device.measure_matmul_flops("cpu", torch.float32, n=256, seconds=0.05)
    assert 1e8 < flops < 1e14


def test_with_dtype_forces_the_autocast_type():
    cpu, bf16 = device.decide(CPU_ONLY), device.decide(CUDA_BF16)
    assert device.with_dtype(cpu, "auto") is cpu
    forced = device.with_dtype(cpu, "bfloat16")
    assert forced.autocast_dtype is torch.bfloat16 and not forced.grad_scaler
    assert "forced" in forced.dtype_reason
    with forced.autocast():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype is torch.bfloat16
    assert device.with_dtype(bf16, "float32").autocast_dtype is None
    fp16 = device.with_dtype(bf16, "float16")
    assert fp16.autocast_dtype is torch.float16 and fp16.grad_scaler
    with pytest.raises(ValueError, match="float16' is for CUDA GPUs"):
        device.with_dtype(cpu, "float16")
    with pytest.raises(ValueError, match="does not autocast on MPS"):
        device.with_dtype(device.decide(MPS_NEW), "bfloat16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        device.with_dtype(cpu, "fp8")


FLAGS_BF16 = "processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16\n"
FLAGS_PLAIN = "processor : 0\nflags : fpu sse avx2 avx512f\n"


def test_fast_dtype_uses_bfloat16_only_where_the_cpu_has_it():
    cpu = device.decide(CPU_ONLY)
    assert device.cpu_native_bf16(FLAGS_BF16) and not device.cpu_native_bf16(FLAGS_PLAIN)
    assert device.cpu_native_bf16("flags : amx_bf16 amx_tile\n")
    fast = device.with_dtype(cpu, "fast", cpuinfo=FLAGS_BF16)
    assert fast.autocast_dtype is torch.bfloat16 and "natively" in fast.dtype_reason
    assert device.with_dtype(cpu, "fast", cpuinfo=FLAGS_PLAIN) is cpu
    bf16 = device.decide(CUDA_BF16)
    assert device.with_dtype(bf16, "fast") is bf16  # CUDA: the plan's choice
    mps = device.decide(MPS_NEW)
    assert device.with_dtype(mps, "fast", cpuinfo=FLAGS_BF16) is mps
