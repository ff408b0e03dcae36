"""course_lib.checkpoints: one file format (tag, version, digest), atomic writes, loading with
weights_only=True, and CheckpointError naming the bad file and field, for a notebook's model and
for the trainer's checkpoints alike."""

from __future__ import annotations

import argparse
import ast
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from train_helpers import tiny

from course_lib import checkpoints as C
from course_lib import data as course_data
from course_lib import rnn, tokenizers, transformer
from course_lib import train as T

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Hello, wörld! 你好 hello again.\n"
# what torch says when weights_only loading fails: advice for experts, not for a learner
TORCH_TEXT = ("weights_only", "PytorchStreamReader", "miniz", "UnpicklingError", "Traceback")


def _gpt(v: int) -> transformer.GPT:
    torch.manual_seed(0)
    return transformer.GPT(transformer.GPTConfig(v, 16, 8, 2, 1, 16))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The checkpoint of an 8-step trainer run on 40,000 characters (about a second)."""
    d = tmp_path_factory.mktemp("trained")
    (d / "input.txt").write_text(
        course_data.load_corpus("train", "small")[:40_000], encoding="utf-8"
    )
    cfg = tiny(d / "input.txt", max_steps=8)
    T.train(cfg, d / "run", progress=False, log=lambda _msg: None)
    return d / "run" / T.CHECKPOINT_NAME


def rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of checkpoint `src` at `dst` with `change(payload)` applied and the digest renewed
    (so only the change is wrong, not the digest)."""
    payload = torch.load(src, weights_only=True)
    payload.pop("digest")
    change(payload)
    torch.save({**payload, "digest": C._digest(payload)}, dst)
    return dst


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("kind", ["gpt", "lstm", "gru"])
def test_checkpoint_round_trip(tmp_path, kind):
    tok = tokenizers.CharTokenizer.train(TEXT)
    torch.manual_seed(0)
    if kind == "gpt":
        model = transformer.GPT(transformer.GPTConfig(tok.vocab_size, 16, 8, 2, 1, 16))
    else:
        model = rnn.RNNGenerator(rnn.RNNConfig(tok.vocab_size, 4, 6, 2, cell=kind))
    path = C.save_checkpoint(tmp_path / "m.pt", C.model_payload(model, tok))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind
    payload = torch.load(path, weights_only=True)
    assert sorted(payload) == [
        "config", "digest", "format", "kind", "state_dict", "tokenizer", "version"
    ]  # fmt: skip
    assert (payload["format"], payload["version"]) == (C.FORMAT, C.VERSION)
    loaded, tok2 = C.load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    assert tok2.pieces == tok.pieces and tok2.encode(TEXT) == tok.encode(TEXT)
    ids = torch.tensor([tok.encode("Hello")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model.eval()(ids), rtol=0, atol=0)


def test_checkpoint_bad_input(tmp_path):
    tok = tokenizers.CharTokenizer.train(TEXT)
    with pytest.raises(TypeError, match="course GPT or RNNGenerator"):
        C.model_payload(torch.nn.Linear(2, 2), tok)
    with pytest.raises(ValueError, match="tokenizer has"):
        C.model_payload(_gpt(v=tok.vocab_size + 1), tok)
    with pytest.raises(TypeError, match="tokenizer must be"):
        C.model_payload(_gpt(v=tok.vocab_size), object())
    with pytest.raises(TypeError, match="payload must be a dict"):
        C.save_checkpoint(tmp_path / "m.pt", [1, 2])
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['state_dict', 'tokenizer'\]"):
        C.save_checkpoint(tmp_path / "m.pt", {"kind": "gpt", "config": {}})
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a course checkpoint"):
        C.load_model(tmp_path / "other.pt")
    assert not (tmp_path / "m.pt").exists()


def test_the_trainer_and_a_notebook_share_one_format(trained):
    payload = C.load_checkpoint(trained)
    assert (payload["format"], payload["version"]) == (C.FORMAT, C.VERSION)
    assert {"step", "optimizer", "scaler", "rng", "config"} <= set(payload["train"])
    model, tok = C.load_model(trained)  # what `python -m course_lib.generate` does
    assert isinstance(model, transformer.GPT) and tok.vocab_size == model.config.vocab_size
    assert all(torch.equal(model.state_dict()[k], v) for k, v in payload["state_dict"].items())
    # the trainer's names are the module's (train.load_checkpoint reads a run's ckpt.pt)
    assert T.CheckpointError is C.CheckpointError and issubclass(C.CheckpointError, ValueError)
    assert T.load_checkpoint is C.load_checkpoint


def test_one_save_checkpoint_and_one_load_checkpoint_in_course_lib():
    """Two pairs of these names with different signatures (generate's and train's) was a defect."""
    defs = sorted(
        (path.name, node.name)
        for path in (ROOT / "course_lib").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name in ("save_checkpoint", "load_checkpoint", "atomic_save", "_digest")
    )
    assert defs == [
        ("checkpoints.py", "_digest"),
        ("checkpoints.py", "atomic_save"),
        ("checkpoints.py", "load_checkpoint"),
        ("checkpoints.py", "save_checkpoint"),
    ]


# ------------------------------------------------------------------------------ bad files


def test_truncated_or_corrupt_checkpoints_are_detected(trained, tmp_path):
    raw = trained.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(C.CheckpointError, match=r"truncated.pt is truncated or corrupt"):
        C.load_checkpoint(truncated)
    # flip bytes inside the largest tensor's storage: the zip still opens, the digest does not
    payload = torch.load(trained, weights_only=True)
    biggest = max(payload["state_dict"].values(), key=lambda t: t.numel())
    needle = biggest.reshape(-1)[:8].numpy().tobytes()
    at = raw.index(needle)
    flipped = bytearray(raw)
    flipped[at : at + 4] = bytes(b ^ 0xFF for b in flipped[at : at + 4])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(C.CheckpointError, match=r"corrupt"):
        C.load_checkpoint(corrupt)
    # generate's loader used to skip the digest: a model from a corrupt file is refused too
    with pytest.raises(C.CheckpointError, match=r"corrupt.pt is corrupt: .* digest"):
        C.load_model(corrupt)
    with pytest.raises(C.CheckpointError, match="no checkpoint at"):
        C.load_checkpoint(tmp_path / "missing.pt")


def test_a_failed_write_never_replaces_the_last_good_checkpoint(trained, tmp_path, monkeypatch):
    good = tmp_path / "ckpt.pt"
    shutil.copy(trained, good)
    before = good.read_bytes()
    payload = C.load_checkpoint(good)
    payload.pop("digest")
    real_save = torch.save

    def half_write(obj, f):  # a disk that fills up half-way
        real_save(obj, f)
        Path(f).write_bytes(Path(f).read_bytes()[:1000])

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(C.CheckpointError):
        C.save_checkpoint(good, payload)

    def crash(obj, f):
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space left"):
        C.save_checkpoint(good, payload)
    assert good.read_bytes() == before
    assert not list(good.parent.glob("*.tmp"))


def test_the_format_tag_and_version_are_checked(trained, tmp_path):
    """The trainer wrote a format tag that nothing checked; now every load checks both."""
    other = rewrite(trained, tmp_path / "other.pt", lambda p: p.update(format="my format"))
    with pytest.raises(C.CheckpointError, match=r"other.pt is not a course checkpoint: .*'format'"):
        C.load_checkpoint(other)
    old = rewrite(trained, tmp_path / "old.pt", lambda p: (p.update(format=1), p.pop("version")))
    with pytest.raises(C.CheckpointError, match=r"old.pt was written by an older course_lib"):
        C.load_checkpoint(old)
    newer = rewrite(trained, tmp_path / "newer.pt", lambda p: p.update(version=C.VERSION + 1))
    with pytest.raises(
        C.CheckpointError, match=rf"newer.pt has checkpoint version {C.VERSION + 1}"
    ):
        C.load_checkpoint(newer)
    untagged = tmp_path / "untagged.pt"
    torch.save(torch.zeros(3), untagged)
    with pytest.raises(C.CheckpointError, match=r"untagged.pt is not a course checkpoint"):
        C.load_checkpoint(untagged)
    partial = rewrite(trained, tmp_path / "partial.pt", lambda p: p.pop("tokenizer"))
    with pytest.raises(C.CheckpointError, match=r"partial.pt lacks the field\(s\) \['tokenizer'\]"):
        C.load_checkpoint(partial)


def _pickled_object(path: Path) -> Path:
    with path.open("wb") as f:  # protocol 4 also makes torch warn before it refuses
        pickle.dump({"x": argparse.Namespace(a=1)}, f, protocol=4)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _pickled_object(p), "holds Python objects other than tensors"),
        (lambda p: torch.save({"x": argparse.Namespace(a=1)}, p), "not a course checkpoint"),
        (lambda p: p.write_text("hello world\n"), "is truncated or corrupt"),
        (lambda p: p.write_bytes(b""), "is truncated or corrupt"),
    ],
    ids=["pickled-object", "torch-saved-object", "text", "empty"],
)
def test_torch_errors_become_a_checkpoint_error_without_torch_text(tmp_path, make, words):
    path = tmp_path / "bad.pt"
    make(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(C.CheckpointError) as info:
            C.load_model(path)
    message = str(info.value)
    assert str(path) in message and words in message
    assert not [w for w in TORCH_TEXT if w in message], message
    assert not caught, [str(w.message) for w in caught]


# ------------------------------------------------------------------------------ configs


def test_an_unknown_or_missing_config_field_is_named(trained, tmp_path):
    extra = rewrite(trained, tmp_path / "extra.pt", lambda p: p["config"].update(colour="red"))
    with pytest.raises(C.CheckpointError, match=r"extra.pt .*unknown field 'config.colour'"):
        C.load_model(extra)
    lacking = rewrite(trained, tmp_path / "lacking.pt", lambda p: p["config"].pop("d_model"))
    with pytest.raises(C.CheckpointError, match=r"lacking.pt .*missing field 'config.d_model'"):
        C.load_model(lacking)
    wrong = rewrite(trained, tmp_path / "wrong.pt", lambda p: p["config"].update(n_heads=0))
    with pytest.raises(C.CheckpointError, match=r"wrong.pt: field 'config' is not a valid GPTConf"):
        C.load_model(wrong)
    saved = C.load_checkpoint(trained)["train"]["config"]
    with pytest.raises(C.CheckpointError, match=r"x.pt .*unknown field 'train.config.colour'"):
        C.restore_config(T.TrainConfig, {**saved, "colour": 1}, "x.pt", "train.config")
    assert C.restore_config(T.TrainConfig, saved, "x.pt") == T.TrainConfig(**saved)


def test_resume_from_a_model_without_a_train_section_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    payload = C.load_checkpoint(trained)
    C.save_checkpoint(run / T.CHECKPOINT_NAME, {k: v for k, v in payload.items() if k != "train"})
    cfg = T.TrainConfig(**payload["train"]["config"])
    with pytest.raises(C.CheckpointError, match=r"ckpt.pt has no field 'train'"):
        T.train(cfg, run, resume=True, progress=False, log=lambda _msg: None)


def test_train_cli_resume_with_an_unknown_config_field_says_error_and_exits_2(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained.parent, run)
    rewrite(trained, run / T.CHECKPOINT_NAME, lambda p: p["train"]["config"].update(colour="red"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "course_lib.train", "--preset", "ci", "--no-progress",
         "--out", str(run), "--resume"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert str(run / T.CHECKPOINT_NAME) in done.stderr
    assert "unknown field 'train.config.colour'" in done.stderr
