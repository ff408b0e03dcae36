"""bench/compare_nanogpt.py's report: RESULTS.md is what the raw runs in bench/results/ give, and
the ablation's two measures (time to the target, loss at a wall budget) count what they say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "compare_nanogpt", REPO / "bench" / "compare_nanogpt.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_is_generated_from_the_raw_runs(bench, tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    bench.main(["report", "--results", str(REPO / "bench" / "results"), "--out", str(out)])
    capsys.readouterr()
    assert out.read_text() == (REPO / "bench" / "RESULTS.md").read_text()


def run(wall, evals):
    """A course run: wall seconds and (val, cumulative train seconds, eval seconds) per eval."""
    rows = [{"val_loss": v, "train_s": t, "eval_s": e} for v, t, e in evals]
    return {"wall_s": wall, "evals": rows}


def test_time_to_target_counts_fixed_costs_training_and_one_evaluation(bench):
    # wall 40 = fixed 5 + training 30 + evaluations 5 (2 + 1 + 2)
    r = run(40.0, [(2.0, 10.0, 2.0), (1.88, 20.0, 1.0), (1.80, 30.0, 2.0)])
    seconds, val = bench.time_to_target(r, target=1.886)
    assert seconds == pytest.approx(5.0 + 20.0 + 1.0)
    assert val == 1.88
    assert bench.time_to_target(r, target=1.5) == (None, None)


def test_val_at_budget_is_the_last_evaluation_finished_in_time(bench):
    r = run(40.0, [(2.0, 10.0, 2.0), (1.88, 20.0, 1.0), (1.80, 30.0, 2.0)])
    assert bench.val_at_budget(r, 26.0) == 1.88  # 5 + 20 + 1 = 26 fits
    assert bench.val_at_budget(r, 25.9) == 2.0
    assert bench.val_at_budget(r, 16.9) is None  # even the first needs 5 + 10 + 2
    assert bench.val_at_budget(r, 100.0) == 1.80


def test_a_cpu_family_is_its_model_and_matmul_flags(bench):
    assert bench.family({"cpu": "AMD EPYC"}) == "AMD EPYC"
    fam = bench.family({"cpu": "Intel Xeon", "flags": ["avx2", "amx_bf16"]})
    assert fam == "Intel Xeon (avx2, amx_bf16)"


def test_inference_md_is_generated_from_the_raw_runs():
    spec = importlib.util.spec_from_file_location(
        "inference_bench", REPO / "bench" / "inference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.read_rows()
    assert module.report_text(rows) == (REPO / "bench" / "INFERENCE.md").read_text(encoding="utf-8")
    # the verdict the report prints is the one the rows give: every repeat at least 3x
    assert min(r["generate_s"]["no_cache"] / r["generate_s"]["cache"] for r in rows) >= 3.0
    assert "target 3x: **met**" in module.report_text(rows)
