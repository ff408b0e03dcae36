"""Toolformer's second tool (guide section 6.4): `[Search(query)→snippet]` over a small document
store about Shakespeare's plays, two retrievers, and a small reader model that answers with and
without the snippet (notebook 12).

    docs, qs = load_documents(), load_questions("test")
    minilm = Retriever(docs, "minilm")                # all-MiniLM-L6-v2, cosine similarity
    overlap = Retriever(docs, "overlap")              # Jaccard of lower-cased word sets
    hit_at(minilm, qs, k=1)                           # share of questions whose gold doc is top 1
    search_call("Who speaks most often in Macbeth?", minilm)   # "[Search(...)→In Macbeth ...]"
    model, tok, results = load_reader()               # the shipped reader, checked
    answer(model, tok, q.text, snippet=minilm.search(q.text))
    python -m course_lib.search build --out DIR --seed 0   # what `models search` runs
    python -m course_lib.search tables                     # rewrites data/plays/*.tsv

The documents, questions, tokenizer and fictitious training plays are `course_lib.search_data`.
The reader is the course GPT trained from scratch (`toolformer.train_lm`) on texts about made-up
plays only, `[Search(q)→document] q answer` or `q answer`: it learns to read an answer out of a
snippet, and never sees a real play's facts, so without the snippet it can only guess.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib import checkpoints, transformer
from course_lib import models as shipped
from course_lib.search_data import (
    Document,
    Question,
    ReaderTokenizer,
    load_documents,
    load_questions,
    reader_texts,
    write_tables,
)
from course_lib.toolformer import train_lm
from course_lib.tools import call_text

TOOL = "Search"
RETRIEVERS = ("minilm", "overlap", "shared")
CONDITIONS = ("none", "minilm", "overlap", "shared", "gold")  # the reader's snippet


# ============================================================================ retrieval


def words(text: str) -> set[str]:
    """The lower-cased word types of a text (letters, digits, apostrophes)."""
    return set(re.findall(r"[a-z0-9']+", text.lower()))


class Retriever:
    """Ranks documents for a query. "minilm": cosine similarity of all-MiniLM-L6-v2 sentence
    embeddings (`course_lib.pretrained.sentence_model`, offline); "overlap": the Jaccard
    similarity of their sets of lower-cased words, |q & d| / |q | d| (no TF-IDF weighting);
    "shared": the number of words they share, |q & d| (long documents win its ties less
    often than they should: see the results). Ties go to the earlier document."""

    def __init__(self, docs: list[Document], kind: str = "minilm", encoder=None):
        if kind not in RETRIEVERS:
            raise ValueError(f"kind must be one of {list(RETRIEVERS)}, got {kind!r}")
        if not docs:
            raise ValueError("docs must hold at least one document")
        self.docs, self.kind = list(docs), kind
        if kind == "minilm":
            if encoder is None:
                from course_lib.pretrained import sentence_model

                encoder = sentence_model()
            self.encoder = encoder
            self.doc_vectors = self._embed([d.text for d in self.docs])  # (D, 384)
        else:
            self.doc_words = [words(d.text) for d in self.docs]

    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = self.encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
        return out.float().cpu()

    def scores(self, queries: list[str]) -> torch.Tensor:
        """(Q, D): cosine similarities, Jaccard similarities or counts of shared words."""
        if self.kind == "minilm":
            return self._embed(list(queries)) @ self.doc_vectors.T
        qs = [words(q) for q in queries]
        if self.kind == "shared":
            rows = [[float(len(q & d)) for d in self.doc_words] for q in qs]
        else:
            rows = [[len(q & d) / max(1, len(q | d)) for d in self.doc_words] for q in qs]
        return torch.tensor(rows, dtype=torch.float64)

    def ranked(self, queries: list[str], k: int = 3) -> list[list[int]]:
        """The indices of the top k documents per query, best first (stable: ties to the
        earlier document)."""
        order = torch.sort(self.scores(queries), dim=1, descending=True, stable=True).indices
        return order[:, :k].tolist()

    def search(self, query: str) -> str:
        """The Search tool: the text of the best document for `query`."""
        return self.docs[self.ranked([query], 1)[0][0]].text


def hit_at(retriever: Retriever, questions: list[Question], k: int = 1) -> float:
    """The share of questions whose gold document is among the top k."""
    ids = [d.doc_id for d in retriever.docs]
    top = retriever.ranked([q.text for q in questions], k)
    return sum(ids.index(q.doc_id) in row for q, row in zip(questions, top, strict=True)) / len(
        questions
    )


def search_call(query: str, retriever: Retriever) -> str:
    """The call with its result, as Toolformer writes it: `[Search(query)→snippet]`."""
    return call_text(query, retriever.search(query), tool=TOOL)


# ============================================================================ the reader


@dataclass
class ReaderConfig:
    """One reader run: the course GPT trained from scratch on texts about made-up plays."""

    seed: int = 0
    texts: int = 20000
    steps: int = 2600
    lr: float = 3e-3
    batch_size: int = 16
    warmup: int = 50
    note: float = 0.85  # share of training texts with a [Search(q)→document] note
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    block_size: int = 256
    position: str = "rope"


def new_reader(tok: ReaderTokenizer, cfg: ReaderConfig) -> transformer.GPT:
    """The reader: the course GPT with cfg.position positions (rotary by default) and an untied
    output layer (as Toolformer's)."""
    torch.manual_seed(cfg.seed)
    config = transformer.GPTConfig(
        vocab_size=len(tok),
        block_size=cfg.block_size,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        n_layers=cfg.n_layers,
        d_ff=4 * cfg.d_model,
        fast=True,
        tie_weights=False,
        position=cfg.position,
    )
    return transformer.GPT(config)


def train_reader(
    cfg: ReaderConfig, stop_after: int | None = None
) -> tuple[transformer.GPT, ReaderTokenizer, list[float]]:
    """(reader, tokenizer, every step's loss), trained with `toolformer.train_lm`; stop_after:
    only the first so many steps of the run's schedule (the reproduction test)."""
    tok = ReaderTokenizer()
    model = new_reader(tok, cfg)
    texts = reader_texts(cfg.seed, cfg.texts, cfg.note)
    losses = train_lm(
        model,
        tok,
        texts,
        cfg.steps,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        warmup=cfg.warmup,
        seed=cfg.seed,
        stop_after=stop_after,
    )
    return model, tok, losses


def prompt(question: str, snippet: str | None = None) -> str:
    """What the reader is given: the question, after `[Search(question)→snippet]` if any."""
    return question if snippet is None else f"{call_text(question, snippet, tool=TOOL)} {question}"


@torch.no_grad()
def answer(
    model: nn.Module,
    tok: ReaderTokenizer,
    question: str,
    snippet: str | None = None,
    max_new: int = 32,
) -> str:
    """The reader's greedy answer: the tokens it writes after the prompt, up to the newline."""
    model.eval()
    ids = [tok.newline, *tok.encode(prompt(question, snippet))]
    max_new = min(max_new, model.config.block_size - len(ids))
    if max_new <= 0:
        raise ValueError(
            f"the prompt has {len(ids)} tokens; the reader reads at most "
            f"{model.config.block_size - 1}"
        )
    cache = model.new_cache(1)
    logits = model(torch.tensor([ids]), cache=cache)[0, -1]
    out = []
    for _ in range(max_new):
        nxt = int(logits.argmax())
        if nxt == tok.newline:
            break
        out.append(nxt)
        logits = model(torch.tensor([[nxt]]), cache=cache)[0, -1]
    return tok.decode(out).strip()


def exact_match(
    model: nn.Module,
    tok: ReaderTokenizer,
    questions: list[Question],
    snippets: list[str | None],
) -> tuple[float, list[str]]:
    """(share of answers equal to the gold answer, the answers)."""
    got = [answer(model, tok, q.text, s) for q, s in zip(questions, snippets, strict=True)]
    return sum(a == q.answer for a, q in zip(got, questions, strict=True)) / len(questions), got


def majority_baseline(questions: list[Question]) -> float:
    """Exact match of answering every question with its kind's most common gold answer (an
    oracle's prior: it is read off the evaluated questions themselves)."""
    by_kind: dict[str, Counter] = {}
    for q in questions:
        by_kind.setdefault(q.kind, Counter())[q.answer] += 1
    return sum(c.most_common(1)[0][1] for c in by_kind.values()) / len(questions)


# ============================================================================ the whole run


def evaluate(
    model: nn.Module,
    tok: ReaderTokenizer,
    retrievers: dict[str, Retriever],
    questions: list[Question],
) -> dict:
    """hit@1 and hit@3 of each retriever; the reader's exact match per snippet condition, over
    all questions and per kind; the majority baseline; a few example answers."""
    docs = {d.doc_id: d.text for d in retrievers["overlap"].docs}
    play_of = {d.doc_id: d.play for d in retrievers["overlap"].docs}
    snippets = {
        "none": [None] * len(questions),
        "gold": [docs[q.doc_id] for q in questions],
        **{name: [r.search(q.text) for q in questions] for name, r in retrievers.items()},
    }
    out: dict = {"questions": len(questions), "retrieval": {}, "exact_match": {}, "by_kind": {}}
    for name, r in retrievers.items():
        out["retrieval"][name] = {f"hit@{k}": hit_at(r, questions, k) for k in (1, 3)}
        top = [r.docs[row[0]].doc_id for row in r.ranked([q.text for q in questions], 1)]
        wrong = [(t, q) for t, q in zip(top, questions, strict=True) if t != q.doc_id]
        out["retrieval"][name]["misses"] = {
            "same play, other fact": sum(play_of[t] == q.play for t, q in wrong),
            "other play": sum(play_of[t] != q.play for t, q in wrong),
        }
        out["retrieval"][name]["hit@1 by kind"] = {
            kind: sum(t == q.doc_id for t, q in zip(top, questions, strict=True) if q.kind == kind)
            / sum(q.kind == kind for q in questions)
            for kind in sorted({q.kind for q in questions})
        }
    answers = {}
    for cond in CONDITIONS:
        out["exact_match"][cond], answers[cond] = exact_match(model, tok, questions, snippets[cond])
    out["exact_match"]["majority baseline"] = majority_baseline(questions)
    for kind in sorted({q.kind for q in questions}):
        idx = [i for i, q in enumerate(questions) if q.kind == kind]
        out["by_kind"][kind] = {
            cond: sum(answers[cond][i] == questions[i].answer for i in idx) / len(idx)
            for cond in CONDITIONS
        } | {"questions": len(idx)}
    out["examples"] = [
        {"question": questions[i].text, "gold": questions[i].answer}
        | {c: answers[c][i] for c in CONDITIONS}
        for i in range(0, len(questions), max(1, len(questions) // 8))
    ]
    return out


def run(cfg: ReaderConfig, log=print) -> tuple[transformer.GPT, ReaderTokenizer, dict]:
    """Train the reader, then evaluate retrieval and reading on the real questions (the test
    split; the dev split, plays looked at while designing, reported apart)."""
    started = time.perf_counter()
    model, tok, losses = train_reader(cfg)
    seconds = time.perf_counter() - started
    log(
        f"reader: {cfg.steps} steps in {seconds:.0f} s, last 50 losses {sum(losses[-50:]) / 50:.3f}"
    )
    docs = load_documents()
    retrievers = {name: Retriever(docs, name) for name in RETRIEVERS}
    results = {
        "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "documents": len(docs),
        "test": evaluate(model, tok, retrievers, load_questions("test")),
        "dev": evaluate(model, tok, retrievers, load_questions("dev")),
        "final_loss": round(sum(losses[-50:]) / 50, 4),
        "train_losses": [round(x, 6) for x in losses[:50]],  # for the reproduction test
    }
    return model, tok, results


# ============================================================================ shipped reader

MODEL_FILE, RESULTS_FILE, NAME = "reader.pt", "results.json", "search"


def save_reader(folder: Path, model: transformer.GPT, tok: ReaderTokenizer, results: dict) -> None:
    """reader.pt (config, tokenizer pieces, weights) and results.json."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"config": asdict(model.config), "pieces": tok.pieces, "model": model.state_dict()}
    checkpoints.atomic_save(payload, folder / MODEL_FILE)
    text = json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    (folder / RESULTS_FILE).write_text(text, encoding="utf-8")


def load_reader(folder: Path | None = None) -> tuple[transformer.GPT, ReaderTokenizer, dict]:
    """The shipped reader in eval mode, its tokenizer and the results of the run that made it,
    after checking every file against data/models/manifest.json (when folder is None)."""
    if folder is None:
        shipped.verify_model(NAME)
        folder = shipped.models_dir() / NAME
    payload = torch.load(Path(folder) / MODEL_FILE, map_location="cpu", weights_only=True)
    tok = ReaderTokenizer()
    if payload["pieces"] != tok.pieces:
        raise ValueError(f"{folder / MODEL_FILE} was made with another vocabulary; rebuild it")
    model = transformer.GPT(transformer.GPTConfig(**payload["config"]))
    model.load_state_dict(payload["model"])
    results = json.loads((Path(folder) / RESULTS_FILE).read_text(encoding="utf-8"))
    return model.eval(), tok, results


def main(argv: list[str] | None = None) -> int:
    """python -m course_lib.search build --out DIR [--seed S] [--threads 1]: train and evaluate
    the reader, write it and its results to DIR; `tables`: rewrite data/plays/*.tsv."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.search")
    parser.add_argument("command", choices=["build", "tables"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="fixed, for reproducible runs")
    args = parser.parse_args(argv)
    if args.command == "tables":
        entry = write_tables()
        print(f"wrote {', '.join(entry['files'])} and their sha256 in data/manifest.json")
        return 0
    if args.out is None:
        parser.error("build needs --out DIR")
    torch.set_num_threads(args.threads)
    model, tok, results = run(ReaderConfig(seed=args.seed), log=lambda m: print(m, flush=True))
    results["threads"] = args.threads
    save_reader(args.out, model, tok, results)
    print(json.dumps({k: results["test"][k] for k in ("retrieval", "exact_match")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
