"""A short smoke test of every CUDA path of `course_lib.train`, for one prepared GPU session.

    python bench/gpu_smoke.py --out /tmp/smoke --json runs/reference/smoke.json
    python bench/gpu_smoke.py --allow-cpu --preset ci --steps 6 ...   # rehearsal on a CPU

Runs the preset for a few steps twice: straight through, and stopped half-way then resumed from
the checkpoint. It records what the device plan chose (autocast dtype, gradient scaler,
torch.compile, TF32), whether AdamW ran fused, the TF32 switch after the run, the first step's
time (compilation included), throughput, the losses, and how far the resumed weights are from
the straight run's (bit-exact is promised on the CPU only; GPU kernels may differ in the last
bits). Needs only torch, NumPy and this repository.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_lib import checkpoints, device  # noqa: E402
from course_lib import train as T  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="a scratch directory for the two runs")
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--allow-cpu", action="store_true", help="rehearse without a GPU")
    args = ap.parse_args(argv)
    plan = device.plan()
    if plan.type != "cuda" and not args.allow_cpu:
        print(f"no CUDA device ({plan.reason}); --allow-cpu rehearses on the CPU", file=sys.stderr)
        return 2
    half = max(1, args.steps // 2)
    cfg = T.preset(
        args.preset,
        max_steps=args.steps,
        warmup_steps=min(5, args.steps),
        eval_every=half,
        eval_windows=32,
        checkpoint_every=half,
        log_every=1,
        sample_tokens=20,
    )
    out = Path(args.out)
    straight = T.train(cfg, out / "straight", progress=False)
    calls: list[int] = []
    stopped = T.train(
        cfg,
        out / "resumed",
        progress=False,
        should_stop=lambda: calls.append(1) or len(calls) >= half,
    )
    resumed = T.train(cfg, out / "resumed", resume=True, progress=False)
    a = checkpoints.load_checkpoint(out / "straight" / T.CHECKPOINT_NAME)
    b = checkpoints.load_checkpoint(out / "resumed" / T.CHECKPOINT_NAME)
    diff = max(
        float((a["state_dict"][k].double() - b["state_dict"][k].double()).abs().max())
        for k in a["state_dict"]
    )
    groups = a["train"]["optimizer"]["param_groups"]
    losses = [r["loss"] for r in straight.history if r["kind"] == "train"]
    tf32_now = (
        torch.backends.cuda.matmul.fp32_precision
        if device.tf32_api() == "fp32_precision"
        else str(torch.backends.cuda.matmul.allow_tf32)
    )
    results = {
        "environment": device.describe_environment(plan),
        "plan": plan.summary(),
        "autocast_dtype": str(plan.autocast_dtype),
        "grad_scaler": plan.grad_scaler,
        "compile": plan.compile,
        "tf32_planned": plan.tf32,
        "tf32_setting_after_run": tf32_now,
        "adamw_fused": [g.get("fused") for g in groups],
        "pinned_memory_path": plan.type == "cuda",
        "first_step_seconds_incl_compile": straight.card["first_step_seconds"],
        "tokens_per_s": straight.card["tokens_per_s"],
        "mfu_measured_peak": straight.card["mfu_measured_peak"],
        "losses": losses,
        "losses_finite": all(math.isfinite(x) for x in losses),
        "stopped_at": stopped.steps,
        "resumed_to": resumed.steps,
        "resume_max_abs_weight_diff": diff,
        "resume_bit_exact": diff == 0.0,
        "samples": straight.card["samples"],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    for key in ("autocast_dtype", "compile", "tf32_setting_after_run", "adamw_fused",
                "first_step_seconds_incl_compile", "tokens_per_s", "losses_finite",
                "resume_max_abs_weight_diff"):  # fmt: skip
        print(f"{key:34s} {results[key]}")
    ok = results["losses_finite"] and losses[-1] < losses[0] and resumed.steps == args.steps
    print("smoke test:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
