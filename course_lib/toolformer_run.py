"""Toolformer's experiment, end to end (notebook 12): one seed's whole run, its evaluation, and
the three models the course ships from it.

    models, results = run(RunConfig(seed=0))   # pre-train M, annotate, fine-tune, evaluate
    models, tok, results = load_models()       # the shipped run: {"M", "control", "toolformer"}
    python -m course_lib.toolformer_run build --out DIR --seed 0   # what `models toolformer` runs

The pipeline's steps are `course_lib.toolformer`; the texts and problems are
`course_lib.toolformer_data`.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from course_lib import checkpoints, transformer
from course_lib import models as shipped
from course_lib.toolformer import (
    Candidate,
    Settings,
    accuracy,
    annotate,
    augment,
    new_model,
    perplexity,
    result_is_right,
    train_lm,
)
from course_lib.toolformer_data import ToolTokenizer, annotation_texts, held_out, make_corpus

# ============================================================================ the whole run


SUBSET = 200  # annotated texts re-run live by notebook 12 and by the tests


@dataclass
class RunConfig:
    """One run of the pipeline, from scratch: pre-train M, annotate, fine-tune, evaluate."""

    seed: int = 0
    corpus: int = 8000  # pre-training texts
    pretrain_steps: int = 3000
    annotate: int = 3000  # plain texts the pipeline annotates
    finetune_steps: int = 800
    finetune_lr: float = 2e-3
    replay: float = 1.0  # plain pre-training texts per annotated text while fine-tuning
    eval_problems: int = 200
    settings: Settings = field(default_factory=Settings)


def finetune(model: nn.Module, tok: ToolTokenizer, texts: list[str], cfg: RunConfig) -> nn.Module:
    """A copy of model trained on texts (no warm-up, cosine to a tenth of finetune_lr)."""
    tuned = copy.deepcopy(model)
    train_lm(tuned, tok, texts, cfg.finetune_steps, lr=cfg.finetune_lr, warmup=0, seed=cfg.seed)
    return tuned


def filter_table(
    tok: ToolTokenizer, texts: list[str], candidates: list[Candidate], taus=(0.5, 1.0, 2.0)
) -> dict[str, dict]:
    """Table 2 of the paper for this run: calls kept at each tau_f, how many of them return the
    number the text writes there ("right"), and how many sit in an easy problem."""
    easy = {i for i, t in enumerate(texts) if max(map(len, re.findall(r"\d+", t))) == 1}
    table = {}
    for tau in taus:
        kept = [c for c in candidates if c.score >= tau]
        table[str(tau)] = {
            "kept": len(kept),
            "right": sum(result_is_right(tok, texts[c.text], c) for c in kept),
            "in easy problems": sum(c.text in easy for c in kept),
        }
    return table


def evaluate(models: dict[str, nn.Module], tok: ToolTokenizer, sets: dict) -> dict[str, dict]:
    """The accuracy table: M and the control (plain greedy), Toolformer with calls disabled,
    with plain greedy calls (top_k=1) and with a looser trigger (top_k=3), on hard and easy
    held-out problems; call rates; perplexity on held-out plain texts."""
    rows = {
        "M": (models["M"], "plain", 1),
        "M + C (control)": (models["control"], "plain", 1),
        "Toolformer (disabled)": (models["toolformer"], "disabled", 1),
        "Toolformer": (models["toolformer"], "tool", 1),
        "Toolformer, [ in top 3": (models["toolformer"], "tool", 3),
    }
    table = {}
    for name, (model, mode, k) in rows.items():
        hard, easy = (accuracy(model, tok, sets[s], mode, k) for s in ("hard", "easy"))
        table[name] = {
            "hard": hard.accuracy,
            "hard calls": hard.call_rate,
            "easy": easy.accuracy,
            "easy calls": easy.call_rate,
            "perplexity": perplexity(model, tok, sets["plain"]),
        }
    return table


def run(cfg: RunConfig, log=print) -> tuple[dict[str, nn.Module], dict]:
    """The whole pipeline from scratch for one seed: (models {"M", "control", "toolformer"},
    results: the counts, the filter table, the kept examples and the accuracy table)."""
    tok, started = ToolTokenizer(), time.perf_counter()
    corpus = make_corpus(cfg.seed, cfg.corpus)
    m = new_model(tok, cfg.seed)
    pre = train_lm(m, tok, corpus, cfg.pretrain_steps, seed=cfg.seed)
    log(f"pre-trained M: {cfg.pretrain_steps} steps, loss {sum(pre[-50:]) / 50:.3f}")
    texts = annotation_texts(cfg.seed + 100, cfg.annotate)
    g = torch.Generator().manual_seed(cfg.seed)
    candidates, counts = annotate(m, tok, texts, cfg.settings, g)
    kept = [c for c in candidates if c.score >= cfg.settings.tau_f]
    c_star = augment(tok, texts, kept)
    log(f"annotated: {counts}; {len(kept)} calls kept, {len(c_star)} texts with a call")
    rng = random.Random(cfg.seed)
    replay = rng.sample(corpus, min(len(corpus), round(cfg.replay * len(c_star))))
    plain = [texts[i] for i in sorted({c.text for c in kept})]  # the same texts, no calls
    models = {
        "M": m,
        "toolformer": finetune(m, tok, c_star + replay, cfg),
        "control": finetune(m, tok, plain + replay, cfg),
    }
    table = evaluate(models, tok, held_out(cfg.seed, cfg.eval_problems))
    # the first SUBSET texts again, with a fresh generator: what notebook 12 re-runs live
    sub, sub_counts = annotate(
        m, tok, texts[:SUBSET], cfg.settings, torch.Generator().manual_seed(cfg.seed)
    )
    results = {
        "config": {**asdict(cfg)},
        "counts": counts,
        "filter": filter_table(tok, texts, candidates),
        "c_star": len(c_star),
        "examples": c_star[:5],
        "accuracy": table,
        "subset": {
            "texts": SUBSET,
            "counts": sub_counts,
            "filter": filter_table(tok, texts[:SUBSET], sub),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "pretrain_losses": [round(x, 6) for x in pre[:50]],  # for the reproduction test
    }
    return models, results


# ============================================================================ shipped models

MODELS_FILE, RESULTS_FILE = "models.pt", "results.json"
SHIPPED = ("M", "control", "toolformer")


def save_models(folder: Path, models: dict[str, nn.Module], results: dict) -> None:
    """models.pt (the three models' config, tokenizer pieces and weights) and results.json."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": asdict(models["M"].config),
        "pieces": ToolTokenizer().pieces,
        "models": {name: models[name].state_dict() for name in SHIPPED},
    }
    checkpoints.atomic_save(payload, folder / MODELS_FILE)
    text = json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    (folder / RESULTS_FILE).write_text(text, encoding="utf-8")


def load_models(
    folder: Path | None = None,
) -> tuple[dict[str, transformer.GPT], ToolTokenizer, dict]:
    """The shipped models {"M", "control", "toolformer"} in eval mode, the tokenizer and the
    results of the run that made them, after checking every file against the manifest."""
    if folder is None:
        shipped.verify_model("toolformer")
        folder = shipped.models_dir() / "toolformer"
    payload = torch.load(folder / MODELS_FILE, map_location="cpu", weights_only=True)
    tok = ToolTokenizer()
    if payload["pieces"] != tok.pieces:
        raise ValueError(f"{folder / MODELS_FILE} was made with another vocabulary; rebuild it")
    out = {}
    for name in SHIPPED:
        model = transformer.GPT(transformer.GPTConfig(**payload["config"]))
        model.load_state_dict(payload["models"][name])
        out[name] = model.eval()
    results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    return out, tok, results


def main(argv: list[str] | None = None) -> int:
    """python -m course_lib.toolformer_run build --out DIR [--seed S]: the whole run, its models
    and results written to DIR (what `python3 tools/course.py models toolformer` ships)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.toolformer_run")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="fixed, for reproducible runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models, results = run(RunConfig(seed=args.seed), log=lambda m: print(m, flush=True))
    results["threads"] = args.threads
    save_models(args.out, models, results)
    print(f"wrote {args.out / MODELS_FILE} and {args.out / RESULTS_FILE} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
