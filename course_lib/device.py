"""Where the course's tensors live, and how fast they may go there.

Every notebook and the trainer ask this module one question, "which device, in which dtype,
compiled or not?", and get one answer with the reasons written out:

    >>> from course_lib import device
    >>> plan = device.plan()
    >>> plan.device, plan.reason            # e.g. ('cpu', 'no CUDA or Apple MPS device found')

The decision is a pure function of a `Capabilities` record (what the machine and the installed
torch can do) so that it can be tested for machines we do not have (`decide`). All differences
between torch versions live here too.

Order of preference: CUDA, then Apple MPS (with torch >= 2.9; older releases gave wrong
results on MPS), then the CPU. `COURSE_DEVICE` (auto | cpu | cuda | cuda:N | mps) overrides the
choice and `COURSE_COMPILE` (auto | 0 | 1) the torch.compile decision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import random
import re
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

MPS_MIN_TORCH = (2, 9)
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"
COMPILE_CHOICES = "auto, 0, 1"


def torch_version_tuple(version: str | None = None) -> tuple[int, int, int]:
    """(major, minor, patch) of a torch version string such as '2.13.0+cpu' or '2.9.0a0+git1'.

    `version` defaults to the installed torch.
    """
    text = torch.__version__ if version is None else version
    if not isinstance(text, str):
        raise TypeError(f"version must be a string like '2.13.0', got {type(text).__name__}")
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        raise ValueError(f"version {text!r} is not a torch version such as '2.13.0+cpu'")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _native_bf16() -> bool:
    """Whether the current CUDA GPU computes bfloat16 natively (compute capability >= 8.0).

    Since torch 2.3, `is_bf16_supported()` also says yes for GPUs that only emulate bfloat16
    (slowly); `including_emulation=False` asks the question the course means.
    """
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no such argument and reports native support only
        return bool(torch.cuda.is_bf16_supported())


@dataclass(frozen=True)
class Capabilities:
    """What this machine and this torch build can do; `Capabilities.probe()` reads them."""

    torch_version: str
    platform: str  # sys.platform: 'linux', 'darwin', 'win32'
    python_version: tuple[int, int]
    cuda_available: bool = False
    cuda_device_count: int = 0
    cuda_name: str | None = None
    cuda_capability: tuple[int, int] | None = None
    cuda_bf16: bool = False
    mps_built: bool = False
    mps_available: bool = False
    triton_available: bool = False
    # None: not probed yet; importing torch._dynamo to ask takes about a second, so
    # supports_dynamo() asks only when a decision needs the answer (compile=1, or auto on CUDA)
    dynamo_supported: bool | None = None

    def supports_dynamo(self) -> bool:
        """Whether torch.compile supports this Python and torch pair."""
        if self.dynamo_supported is not None:
            return self.dynamo_supported
        try:
            from torch._dynamo import is_dynamo_supported

            return bool(is_dynamo_supported())
        except Exception:  # pragma: no cover - very old or stripped builds
            return False

    @classmethod
    def probe(cls) -> Capabilities:
        cuda = torch.cuda.is_available()
        mps_backend = getattr(torch.backends, "mps", None)
        try:
            import triton  # noqa: F401

            triton_ok = True
        except Exception:
            triton_ok = False
        return cls(
            torch_version=torch.__version__,
            platform=sys.platform,
            python_version=sys.version_info[:2],
            cuda_available=cuda,
            cuda_device_count=torch.cuda.device_count() if cuda else 0,
            cuda_name=torch.cuda.get_device_name(0) if cuda else None,
            cuda_capability=tuple(torch.cuda.get_device_capability(0)) if cuda else None,
            cuda_bf16=bool(cuda and _native_bf16()),
            mps_built=bool(mps_backend and mps_backend.is_built()),
            mps_available=bool(mps_backend and mps_backend.is_available()),
            triton_available=triton_ok,
        )


@dataclass(frozen=True)
class DevicePlan:
    """The answer: where to run, in which autocast dtype, compiled or not, and why."""

    device: str  # a torch device string: 'cpu', 'cuda', 'cuda:1', 'mps'
    reason: str
    autocast_dtype: torch.dtype | None  # None: plain float32, no autocast
    dtype_reason: str
    grad_scaler: bool  # float16 needs loss scaling; bfloat16 and float32 do not
    compile: bool
    compile_reason: str
    tf32: bool  # TensorFloat-32 matmuls (CUDA, compute capability >= 8.0)
    capabilities: Capabilities | None = field(repr=False, compare=False, default=None)

    @property
    def type(self) -> str:
        """'cpu', 'cuda' or 'mps' (the device string without an index)."""
        return self.device.split(":")[0]

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context manager for the forward pass: autocast where the plan uses it, else nothing."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.type, dtype=self.autocast_dtype)

    def summary(self) -> str:
        dtype = "float32 (no autocast)" if self.autocast_dtype is None else str(self.autocast_dtype)
        dtype = dtype.replace("torch.", "")
        return "\n".join(
            [
                f"device        {self.device}: {self.reason}",
                f"dtype         {dtype}: {self.dtype_reason}",
                f"grad scaler   {'yes' if self.grad_scaler else 'no'}",
                f"torch.compile {'on' if self.compile else 'off'}: {self.compile_reason}",
                f"TF32 matmuls  {'on' if self.tf32 else 'off'}",
            ]
        )


def _parse_device(requested: str, source: str) -> str:
    if not isinstance(requested, str):
        raise TypeError(f"{source} must be a string ({DEVICE_CHOICES}), got {requested!r}")
    value = requested.strip().lower()
    if value in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise ValueError(f"{source} must be one of {DEVICE_CHOICES}; got {requested!r}")


def _parse_compile(requested: str | bool | None, source: str) -> bool | None:
    """True / False for a forced choice, None for 'auto'."""
    if requested is None or isinstance(requested, bool):
        return requested
    value = str(requested).strip().lower()
    if value in ("auto", ""):
        return None
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{source} must be one of {COMPILE_CHOICES}; got {requested!r}")


def decide(
    caps: Capabilities,
    device: str | None = None,
    compile: str | bool | None = None,
) -> DevicePlan:
    """The device decision table, as a pure function of `caps`.

    device: 'auto' (default), 'cpu', 'cuda', 'cuda:N' or 'mps'; a forced device that the
    machine lacks is an error, not a silent fallback. compile: None / 'auto', True or False.
    Three decisions, each with its reason: the device, the autocast dtype, torch.compile.
    """
    if not isinstance(caps, Capabilities):
        raise TypeError(f"caps must be a Capabilities record, got {type(caps).__name__}")
    choice = _parse_device("auto" if device is None else device, "device")
    force_compile = _parse_compile(compile, "compile")
    mps_ok = torch_version_tuple(caps.torch_version)[:2] >= MPS_MIN_TORCH
    if choice == "auto":
        dev, reason = _auto_device(caps, mps_ok)
    else:
        dev, reason = _forced_device(caps, choice, mps_ok)
    kind = dev.split(":")[0]
    cc = caps.cuda_capability or (0, 0)
    dtype, scaler, dtype_reason = _autocast_choice(caps, kind)
    comp, comp_reason = _compile_choice(caps, kind, cc, force_compile)
    return DevicePlan(
        device=dev,
        reason=reason,
        autocast_dtype=dtype,
        dtype_reason=dtype_reason,
        grad_scaler=scaler,
        compile=comp,
        compile_reason=comp_reason,
        tf32=kind == "cuda" and cc >= (8, 0),
        capabilities=caps,
    )


def _auto_device(caps: Capabilities, mps_ok: bool) -> tuple[str, str]:
    """CUDA, then Apple MPS (torch >= 2.9), then the CPU: (device, reason)."""
    if caps.cuda_available:
        name = caps.cuda_name or "a CUDA GPU"
        cc = caps.cuda_capability
        where = f" (compute capability {cc[0]}.{cc[1]})" if cc else ""
        return "cuda", f"CUDA is available: {name}{where}"
    if caps.mps_available and mps_ok:
        return "mps", f"Apple MPS is available and torch {caps.torch_version} >= 2.9"
    if caps.mps_available:
        return "cpu", (
            f"Apple MPS is available, but torch {caps.torch_version} < 2.9 has known "
            "correctness problems on MPS; using the CPU (upgrade torch to use the GPU)"
        )
    return "cpu", "no CUDA or Apple MPS device found"


def _forced_device(caps: Capabilities, choice: str, mps_ok: bool) -> tuple[str, str]:
    """A device asked for by name: (device, reason), or ValueError when the machine lacks it."""
    if choice == "cpu":
        return "cpu", "forced by COURSE_DEVICE / device='cpu'"
    if choice.startswith("cuda"):
        if not caps.cuda_available:
            raise ValueError(
                f"device={choice!r} (COURSE_DEVICE) but CUDA is not available with torch "
                f"{caps.torch_version}; install a CUDA build of torch or use device='auto'"
            )
        index = int(choice.split(":")[1]) if ":" in choice else 0
        if index >= caps.cuda_device_count:
            raise ValueError(
                f"device={choice!r} (COURSE_DEVICE) but only {caps.cuda_device_count} CUDA "
                "device(s) are visible"
            )
        return choice, f"forced by COURSE_DEVICE / device={choice!r}"
    if not caps.mps_available:  # mps
        built = "built into this torch" if caps.mps_built else "not built into this torch"
        raise ValueError(
            f"device='mps' (COURSE_DEVICE) but Apple MPS is not available (it is {built})"
        )
    reason = "forced by COURSE_DEVICE / device='mps'"
    if not mps_ok:
        reason += f"; torch {caps.torch_version} < 2.9 has known MPS bugs"
    return "mps", reason


def _autocast_choice(caps: Capabilities, kind: str) -> tuple[torch.dtype | None, bool, str]:
    """(autocast dtype or None for float32, whether a gradient scaler is needed, reason)."""
    if kind == "cuda" and caps.cuda_bf16:
        return (
            torch.bfloat16,
            False,
            "the GPU computes bfloat16 natively, and bfloat16 needs no loss scaling",
        )
    if kind == "cuda":
        return (
            torch.float16,
            True,
            "this GPU has no native bfloat16; float16 needs a gradient scaler",
        )
    if kind == "mps":
        return None, False, "autocast on MPS is incomplete; float32 is the safe choice"
    return None, False, "the course keeps CPU runs in full precision"


def _compile_choice(
    caps: Capabilities, kind: str, cc: tuple[int, int], forced: bool | None
) -> tuple[bool, str]:
    """Whether to torch.compile, and why: as forced (COURSE_COMPILE / compile), else on CUDA with
    Triton on Linux (compute capability >= 7.0) only."""
    if forced is not None:
        if forced and not caps.supports_dynamo():
            raise ValueError(
                f"compile=1 (COURSE_COMPILE) but torch.compile does not support Python "
                f"{caps.python_version[0]}.{caps.python_version[1]} with torch "
                f"{caps.torch_version}"
            )
        return forced, "forced by COURSE_COMPILE / compile"
    if kind != "cuda":
        return False, (
            "off by default on the CPU and MPS, where the course's runs are short "
            "(COURSE_COMPILE=1 turns it on)"
        )
    if not caps.supports_dynamo():
        return False, "torch.compile does not support this Python and torch pair"
    if not caps.platform.startswith("linux"):
        return False, "Triton, its GPU backend, runs on Linux only"
    if not caps.triton_available:
        return False, "Triton, its GPU backend, is not installed"
    if cc < (7, 0):
        return False, f"Triton needs compute capability >= 7.0, got {cc}"
    return True, "CUDA on Linux with Triton: fused kernels pay off"


def _from_env(name: str, parse) -> str:
    """An environment variable's value ('auto' when unset), checked by `parse`."""
    value = os.environ.get(name) or "auto"
    try:
        parse(value, name)
    except ValueError as e:
        raise ValueError(f"environment variable {e}") from None
    return value


def plan(device: str | None = None, compile: str | bool | None = None) -> DevicePlan:
    """Decide for this machine. None or 'auto' (a TrainConfig's default) means "not chosen":
    COURSE_DEVICE and COURSE_COMPILE decide, else detection; any other value overrides them."""
    if device is None or _parse_device(device, "device") == "auto":
        device = _from_env("COURSE_DEVICE", _parse_device)
    if _parse_compile(compile, "compile") is None:
        compile = _from_env("COURSE_COMPILE", _parse_compile)
    return decide(Capabilities.probe(), device=device, compile=compile)


DTYPE_CHOICES = ("auto", "fast", "float32", "bfloat16", "float16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bfloat16


def cpu_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX-BF16 in
    /proc/cpuinfo's flags). Elsewhere (other OSes, ARM) the answer is no: the course does not
    guess. `cpuinfo` is the file's text, for tests."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    return any(f in flags for f in CPU_BF16_FLAGS)


def with_dtype(device_plan: DevicePlan, dtype: str, cpuinfo: str | None = None) -> DevicePlan:
    """The plan with its autocast dtype chosen for training: 'auto' keeps the plan's choice (on
    the CPU, float32, so that runs repeat to the digit); 'fast' guesses from the hardware: the
    plan's on CUDA, bfloat16 on a CPU with bfloat16 instructions (`cpu_native_bf16`), float32
    elsewhere (the trainer does not trust the guess: it times both, train.choose_fast_dtype);
    'float32' turns autocast off; 'bfloat16' or 'float16' force that type (float16 only on
    CUDA, with a gradient scaler)."""
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {DTYPE_CHOICES}, got {dtype!r}")
    if dtype == "auto":
        return device_plan
    if dtype == "fast":
        if device_plan.type == "cpu" and cpu_native_bf16(cpuinfo):
            return dataclasses.replace(
                device_plan,
                autocast_dtype=torch.bfloat16,
                dtype_reason="dtype='fast': this CPU computes bfloat16 natively",
                grad_scaler=False,
            )
        return device_plan
    if dtype == "float16" and device_plan.type != "cuda":
        raise ValueError(f"dtype='float16' is for CUDA GPUs; this plan runs on {device_plan.type}")
    if dtype == "bfloat16" and device_plan.type == "mps":
        raise ValueError("dtype='bfloat16': the course does not autocast on MPS")
    chosen = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return dataclasses.replace(
        device_plan,
        autocast_dtype=chosen,
        dtype_reason=f"forced: dtype={dtype!r}",
        grad_scaler=dtype == "float16",
    )


# ---------------------------------------------------------------- speed settings for training

TF32_NEW_API = (2, 9)  # torch 2.9 replaced allow_tf32 flags with fp32_precision settings


def tf32_api(torch_version: str | None = None) -> str:
    """Which switch turns on TF32 in this torch: 'fp32_precision' (>= 2.9) or 'allow_tf32'."""
    new = torch_version_tuple(torch_version)[:2] >= TF32_NEW_API
    return "fp32_precision" if new else "allow_tf32"


def set_tf32(enabled: bool, torch_version: str | None = None) -> str:
    """Let CUDA float32 matmuls and convolutions use TensorFloat-32 (10-bit mantissa inputs,
    float32 accumulation), or forbid it. Returns the API used (see `tf32_api`)."""
    api = tf32_api(torch_version)
    if api == "fp32_precision":
        precision = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:
        torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)
    return api


def tf32_settings(torch_version: str | None = None) -> dict[str, object]:
    """The switches `set_tf32` changes, as they are now; `restore_tf32` puts them back."""
    api = tf32_api(torch_version)
    if api == "fp32_precision":
        matmul = torch.backends.cuda.matmul.fp32_precision
        conv = torch.backends.cudnn.conv.fp32_precision
    else:
        matmul = torch.backends.cuda.matmul.allow_tf32
        conv = torch.backends.cudnn.allow_tf32
    return {"api": api, "matmul": matmul, "conv": conv}


def restore_tf32(settings: dict[str, object]) -> None:
    """Put back the switches that `tf32_settings()` read (a run hands TF32 back as it found it)."""
    if not isinstance(settings, dict) or set(settings) != {"api", "matmul", "conv"}:
        raise ValueError(f"settings must come from tf32_settings(), got {settings!r}")
    if settings["api"] == "fp32_precision":
        torch.backends.cuda.matmul.fp32_precision = settings["matmul"]
        torch.backends.cudnn.conv.fp32_precision = settings["conv"]
    else:
        torch.backends.cuda.matmul.allow_tf32 = settings["matmul"]
        torch.backends.cudnn.allow_tf32 = settings["conv"]


FUSED_ADAMW_CPU = (2, 4)  # the fused AdamW kernel exists for the CPU from torch 2.4


def fused_adamw(device_plan: DevicePlan, torch_version: str | None = None) -> bool:
    """Whether to build `torch.optim.AdamW(..., fused=True)` on the plan's device: on CUDA (one
    kernel for all parameters) and on the CPU from torch 2.4 (without it, the CPU takes one
    small kernel per parameter and operation); not on MPS."""
    if device_plan.type == "cuda":
        return True
    return device_plan.type == "cpu" and torch_version_tuple(torch_version) >= FUSED_ADAMW_CPU


def grad_scaler(device_plan: DevicePlan) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only where the plan trains in float16 (a no-op otherwise)."""
    return torch.amp.GradScaler(device_plan.type, enabled=device_plan.grad_scaler)


# Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s, from the vendors' data sheets, for the
# GPUs the course has numbers for; the first matching name wins (H100 PCIe before H100).
PEAK_TFLOPS = (
    ("H100 PCIe", {"bfloat16": 756.0, "float16": 756.0, "tf32": 378.0}),
    ("H200", {"bfloat16": 989.0, "float16": 989.0, "tf32": 494.5}),
    ("H100", {"bfloat16": 989.0, "float16": 989.0, "tf32": 494.5}),
    ("A100", {"bfloat16": 312.0, "float16": 312.0, "tf32": 156.0}),
)


def datasheet_peak_flops(gpu_name: str | None, dtype: str) -> float | None:
    """The data-sheet peak (FLOP/s) of a known GPU in 'bfloat16', 'float16' or 'tf32'; None
    for an unknown GPU or dtype."""
    if not gpu_name:
        return None
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in gpu_name.lower():
            return peaks[dtype] * 1e12 if dtype in peaks else None
    return None


def measure_matmul_flops(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    n: int | None = None,
    seconds: float = 0.5,
) -> float:
    """Measured matmul throughput (FLOP/s, median of repeats) of (n, n) @ (n, n) products on
    `device` in `dtype`: the denominator of model FLOPs utilisation (MFU). n defaults to 1024 on
    the CPU and 8192 on a GPU."""
    import time

    dev = torch.device(device)
    n = n or (1024 if dev.type == "cpu" else 8192)
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        elif dev.type == "mps":
            torch.mps.synchronize()

    torch.mm(a, b, out=out)  # warm-up: allocation, kernel choice
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < seconds and len(times) < 1000):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 2.0 * n**3 / times[len(times) // 2]


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python's `random`, NumPy's global generator and torch (CPU, CUDA, MPS).

    deterministic=True also asks torch for deterministic kernels (warning where none exists).
    Returns the seed, so a notebook can print what it used.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (NumPy's range), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA and MPS device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def _memory_bytes() -> tuple[int | None, int | None]:
    """(total, available) system memory in bytes; None where the OS does not say."""
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ":" in ln}
        return info.get("MemTotal"), info.get("MemAvailable")
    except OSError:
        pass
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = None
    return total, None


def _gib(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 2**30:.1f} GiB"


def describe_environment(device_plan: DevicePlan | None = None) -> dict[str, str]:
    """Versions, hardware and the device decision, as printable strings."""
    import course_lib

    if device_plan is not None and not isinstance(device_plan, DevicePlan):
        raise TypeError(
            "device_plan must be a DevicePlan (from device.plan()), "
            f"got {type(device_plan).__name__}"
        )
    p = device_plan if device_plan is not None else plan()
    caps = p.capabilities or Capabilities.probe()
    total, available = _memory_bytes()
    env = {
        "course_lib": course_lib.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "memory": f"{_gib(total)} total, {_gib(available)} available",
        "device": p.device,
        "device reason": p.reason,
        "autocast dtype": str(p.autocast_dtype).replace("torch.", "")
        if p.autocast_dtype
        else "none (float32)",
        "torch.compile": "on" if p.compile else f"off ({p.compile_reason})",
    }
    if caps.cuda_available:
        free, tot = torch.cuda.mem_get_info()
        env["gpu"] = f"{caps.cuda_name}, compute capability {caps.cuda_capability}"
        env["gpu memory"] = f"{_gib(tot)} total, {_gib(free)} free"
        env["cuda"] = str(torch.version.cuda)
    if p.type == "mps":
        rec = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        env["gpu memory"] = _gib(rec()) + " recommended maximum" if rec else "unknown"
    return env


def main() -> None:
    """`python -m course_lib.device`: print the environment and the device plan."""
    p = plan()
    for key, value in describe_environment(p).items():
        print(f"{key:15s} {value}")
    print()
    print(p.summary())


if __name__ == "__main__":
    main()
