"""The layers of course_lib: low modules import no course module, and nothing imports in a cycle.

One exception, by design: `validate` (the shared argument checks: one rule, TypeError for a wrong
type, ValueError for a wrong value) is the base module. It imports no course module, and any
module may import it, the standalone ones included; nothing else is allowed below them.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# CONVENTIONS: these import no other course module but BASE ("check" is a generic harness; the
# loss, autograd, optimizer and metric modules stand alone).
BASE = "validate"
STANDALONE = {
    "device",
    "data",
    "plots",
    "attention",
    "embeddings",
    "positions",  # sinusoidal and rotary encodings (split out of embeddings, which re-exports)
    "norms",  # layer norm and RMS norm (split out of transformer by concept)
    "feedforward",  # the plain and the gated MLP
    "check",
    "losses",
    "autograd",
    "optim",
    "metrics",
}


def course_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "course_lib"
        ):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("course_lib.")}
    return found


GRAPH = {
    p.stem: course_imports(p) for p in (REPO / "course_lib").glob("*.py") if p.stem != "__init__"
}
# A package (course_lib/exercises/) is one node: the union of its modules' imports.
PACKAGES = [p.parent for p in (REPO / "course_lib").glob("*/__init__.py")]
for package in PACKAGES:
    GRAPH[package.name] = set().union(*(course_imports(f) for f in package.glob("*.py")))
    GRAPH[package.name].discard(package.name)


def test_import_parser_sees_every_form(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import course_lib.device\n"
        "from course_lib import data as d\n"
        "from course_lib.check import check\n"
    )
    assert course_imports(f) == {"device", "data", "check"}


def test_standalone_modules_import_no_course_module_but_the_base():
    for name in sorted(STANDALONE & set(GRAPH)):
        allowed = {BASE, "positions"} if name == "embeddings" else {BASE}  # its re-exports
        assert GRAPH[name] <= allowed, f"{name} imports {sorted(GRAPH[name] - allowed)}"


def test_the_base_module_imports_no_course_module():
    assert BASE in GRAPH, f"course_lib/{BASE}.py is missing"
    assert not GRAPH[BASE], f"{BASE} imports {sorted(GRAPH[BASE])}"


def test_no_import_cycles():
    seen, stack = set(), set()

    def visit(m):
        assert m not in stack, f"import cycle through {m}"
        if m in seen:
            return
        stack.add(m)
        for dep in GRAPH.get(m, ()):
            visit(dep)
        stack.remove(m)
        seen.add(m)

    for m in GRAPH:
        visit(m)


def test_profile_builds_only_on_device():
    assert GRAPH["profile"] <= {"device", BASE}


def test_the_subword_tokenizers_build_on_tokenizers():
    # byte-level BPE and WordPiece use the text check and JSON helpers of `tokenizers`, which
    # imports neither; they do not import each other
    assert not GRAPH["tokenizers"] & {"bpe", "wordpiece"}, sorted(GRAPH["tokenizers"])
    for name in ("bpe", "wordpiece"):
        extra = GRAPH[name] - {"tokenizers", BASE}
        assert not extra, f"{name} imports {sorted(extra)}"


# The trainer, split by what a reader looks for: the loop (train), its config and presets, its
# data and evaluation, the state a checkpoint saves and restores, the run card, and DDP.
TRAINER = {"train", "train_config", "train_data", "train_state", "run_card", "ddp"}


def test_the_trainer_sits_on_top():
    assert TRAINER <= set(GRAPH), sorted(TRAINER - set(GRAPH))
    # the answer key (notebooks' exercises) may check a learner's loop against the trainer's;
    # inference scores models on the trainer's validation windows
    users = {m for m, deps in GRAPH.items() if deps & TRAINER}
    users -= TRAINER | {"exercises", "inference"}
    assert not users, f"only the trainer's own modules import it: {sorted(users)}"
    assert not [m for m, deps in GRAPH.items() if "train" in deps], "nothing imports the loop"
    below = {
        "checkpoints",
        "data",
        "device",
        "generate",
        "optim",
        "plots",
        "tokenizers",
        "transformer",
        BASE,
    }
    for m in sorted(TRAINER):
        assert GRAPH[m] <= below | TRAINER, f"{m} imports {sorted(GRAPH[m] - below - TRAINER)}"
        assert "profile" not in GRAPH[m]  # the trainer takes a config, not the notebook profile


def test_bert_builds_on_the_transformer():
    assert GRAPH["bert"] <= {"transformer", "attention", "embeddings", BASE}
    assert "bert" not in GRAPH["transformer"]
    users = {m for m, deps in GRAPH.items() if "bert" in deps}
    assert users <= {"pretrained", "finetune"}, sorted(users)  # finetune pools BERT's states


def test_the_answer_key_sits_on_top():
    # course_lib/exercises: each notebook's references, cases and named mistakes, handed to the
    # generic check. It may import any course module; none imports it, and check stays generic.
    assert "exercises" in GRAPH and "check" in GRAPH["exercises"]
    users = {m for m, deps in GRAPH.items() if "exercises" in deps}
    assert not users, f"only notebooks import the answer key: {sorted(users)}"
    assert "exercises" not in GRAPH["check"]
    modules = sorted(p.stem for p in (REPO / "course_lib" / "exercises").glob("nb*.py"))
    assert modules and all(len(m) == 4 and m[2:].isdigit() for m in modules), modules


def test_the_transformer_builds_on_its_parts():
    # the block's parts, each its own concept; bert uses them through the transformer
    assert {"attention", "positions", "norms", "feedforward"} <= GRAPH["transformer"]
    users = {m for m, deps in GRAPH.items() if deps & {"norms", "feedforward"}}
    assert users <= {"transformer", "exercises"}, sorted(users)


def test_memory_builds_on_the_transformer():
    # the training-memory budget needs the GPT's config and parameter count, nothing above it
    assert GRAPH["memory"] <= {"transformer", BASE}
    assert not {m for m, deps in GRAPH.items() if "memory" in deps}
