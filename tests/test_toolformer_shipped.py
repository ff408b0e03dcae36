"""The shipped Toolformer run (data/models/toolformer, made by `python3 tools/course.py models
toolformer`): its files match the manifest, its first 50 pre-training steps and its live
annotation of the first 200 texts reproduce what the run stored, its numbers say what notebook
12 claims, and the bench's five-seed report is generated from the stored rows."""

import importlib.util
import random

import pytest
import torch

from course_lib import models as shipped
from course_lib import toolformer as TF
from course_lib import toolformer_data as D
from course_lib import toolformer_run as run


@pytest.fixture(scope="module")
def loaded():
    return run.load_models()


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the run's thread count: the same sums, so the same samples
    yield
    torch.set_num_threads(before)


def test_the_shipped_files_match_the_manifest_and_load(loaded):
    models, tok, results = loaded
    assert set(models) == {"M", "control", "toolformer"}
    assert results["config"]["seed"] == 0 and results["threads"] == 1
    assert all(not m.training for m in models.values())
    definition = shipped.BUILT["toolformer"]
    assert "--seed" in definition.args and definition.module == "course_lib.toolformer_run"


def test_the_first_50_pretraining_steps_reproduce(loaded, one_thread):
    _, tok, results = loaded
    cfg = run.RunConfig(**{k: v for k, v in results["config"].items() if k != "settings"})
    model = TF.new_model(tok, cfg.seed)
    corpus = D.make_corpus(cfg.seed, cfg.corpus)
    losses = TF.train_lm(model, tok, corpus, cfg.pretrain_steps, seed=cfg.seed, stop_after=50)
    assert losses == pytest.approx(results["pretrain_losses"], rel=1e-4)


def test_the_live_annotation_of_the_subset_reproduces_the_stored_counts(loaded, one_thread):
    models, tok, results = loaded
    cfg = results["config"]
    texts = D.annotation_texts(cfg["seed"] + 100, cfg["annotate"])[: run.SUBSET]
    generator = torch.Generator().manual_seed(cfg["seed"])
    candidates, counts = TF.annotate(
        models["M"], tok, texts, TF.Settings(**cfg["settings"]), generator
    )
    assert counts == results["subset"]["counts"]
    assert run.filter_table(tok, texts, candidates) == results["subset"]["filter"]


def test_the_stored_results_say_what_notebook_12_claims(loaded):
    _, _, results = loaded
    a = results["accuracy"]
    assert a["Toolformer"]["hard"] >= 0.40
    for name in ("M", "M + C (control)", "Toolformer (disabled)"):
        assert a[name]["hard"] <= 0.05, name
    assert a["Toolformer"]["easy calls"] <= 0.10
    kept = results["filter"]["1.0"]
    assert kept["right"] >= 0.6 * kept["kept"] and kept["in easy problems"] <= 0.05 * kept["kept"]
    # Table 2's shape: a higher threshold keeps fewer calls
    f = results["filter"]
    assert f["0.5"]["kept"] >= f["1.0"]["kept"] >= f["2.0"]["kept"]


def test_live_accuracy_on_a_few_problems_agrees_with_the_stored_table(loaded):
    models, tok, results = loaded
    sets = D.held_out(results["config"]["seed"], results["config"]["eval_problems"])
    score = TF.accuracy(models["toolformer"], tok, sets["hard"][:20], "tool", 1)
    assert score.accuracy >= 0.25 and score.call_rate >= 0.5
    plain = TF.accuracy(models["M"], tok, sets["hard"][:20], "plain", 1)
    assert plain.accuracy <= 0.1 and plain.call_rate == 0


def _bench():
    spec = importlib.util.spec_from_file_location(
        "toolformer_seeds", shipped.REPO / "bench" / "toolformer_seeds.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_report_is_generated_from_its_rows_and_has_five_seeds(loaded):
    bench = _bench()
    rows = bench.read_rows()
    main = [r for r in rows if r["config"]["replay"] == 1.0]
    assert sorted(r["config"]["seed"] for r in main) == [0, 1, 2, 3, 4]
    assert bench.REPORT.read_text(encoding="utf-8") == bench.report_text(rows)
    seed0 = next(r for r in main if r["config"]["seed"] == 0)
    assert seed0["accuracy"] == loaded[2]["accuracy"]  # the shipped run, reproduced
    assert any(r["config"]["replay"] == 0.0 for r in rows)  # the paper's recipe, measured


def test_the_bench_report_of_made_up_rows():
    bench = _bench()
    rng = random.Random(0)

    def row(seed, replay, hard):
        acc = {
            name: {
                "hard": hard if name.startswith("Toolformer") else 0.0,
                "hard calls": 0.8,
                "easy": rng.random(),
                "easy calls": 0.0,
                "perplexity": 3.0,
            }
            for name in bench.ROWS
        }
        return {
            "config": {"seed": seed, "replay": replay},
            "filter": {"1.0": {"kept": 10, "right": 8}},
            "accuracy": acc,
            "seconds": 1.0,
            "torch": "x",
        }

    text = bench.report_text([row(s, 1.0, h) for s, h in enumerate([0.2, 0.6, 0.4])])
    assert "- Toolformer: 40.0% (20.0%-60.0%)" in text
    with_ablation = bench.report_text([row(0, 1.0, 0.5), row(0, 0.0, 0.7)])
    assert "C* alone" in with_ablation and "Toolformer: 50.0% (50.0%-50.0%)" in with_ablation
