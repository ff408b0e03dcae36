"""Checkpoints: the one file format for every model the course saves, the trainer's included.

    path = save_checkpoint(path, model_payload(model, tokenizer))   # atomic, with a digest
    payload = load_checkpoint(path)                  # the checked dict (weights_only=True)
    model, tokenizer = load_model(path)              # a GPT or RNN in eval mode, its tokenizer
    python -m course_lib.generate --checkpoint PATH --prompt TEXT

A checkpoint is `torch.save` of a plain dict of tensors, numbers, strings, lists and dicts:

    format      FORMAT, the tag that says "a course checkpoint"
    version     VERSION, the layout of the rest (raise it when the layout changes)
    kind        "gpt" or "rnn"
    config      dataclasses.asdict(model.config)
    state_dict  the weights, on the CPU
    tokenizer   {"type": "char" | "word", "pieces": [...]}
    train       the trainer's checkpoints only: optimizer, scaler, RNG states, step, TrainConfig
    digest      sha256 of all of the above (tensors by dtype, shape and bytes)

`save_checkpoint` writes a temporary file next to `path`, reads it back and checks it, and only
then renames it onto `path`: a crash, a full disk or a bad write never replaces the previous
checkpoint with half a file. `load_checkpoint` loads with `torch.load(..., weights_only=True)`,
which refuses to run code hidden in a file, and checks the format tag, the version and the
digest. Every problem is a `CheckpointError` (a ValueError) that names the file and, where one
is at fault, the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from course_lib import rnn, tokenizers, transformer

FORMAT = "course_lib checkpoint"
VERSION = 2  # version 1: the files of course_lib before this module, tagged "format": 1
MODEL_FIELDS = ("kind", "config", "state_dict", "tokenizer")
MODEL_KINDS = {
    "gpt": (transformer.GPTConfig, transformer.GPT),
    "rnn": (rnn.RNNConfig, rnn.RNNGenerator),
}
TOKENIZER_KINDS = {"char": tokenizers.CharTokenizer, "word": tokenizers.WordTokenizer}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupt, of another format or
    version, or from another run. The message names the file and, where it applies, the field."""


def _digest(obj, h=None) -> str:
    """sha256 over a checkpoint's content (tensors by dtype, shape and bytes), key order fixed."""
    h = h or hashlib.sha256()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _digest(v, h)
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()


def atomic_save(
    payload: dict, path: str | os.PathLike, verify: Callable[[Path], object] | None = None
) -> Path:
    """torch.save `payload` to a temporary file next to `path`, check it with `verify(tmp)` if
    given (which raises on a bad file), then rename it onto `path`: a crash, a full disk or a
    bad write never replaces the previous file with half a checkpoint."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        if verify is not None:
            verify(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------- save and load


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write `payload` (a `model_payload`, plus a "train" section from the trainer) to `path`,
    tagged with FORMAT and VERSION and sealed with a digest, atomically (`atomic_save`, checked
    by reading it back with `load_checkpoint`). Returns the path."""
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict (see model_payload), got {type(payload).__name__}")
    missing = [k for k in MODEL_FIELDS if k not in payload]
    if missing:
        raise ValueError(f"payload lacks the field(s) {missing}; model_payload() makes them")
    body = {k: v for k, v in payload.items() if k != "digest"}
    body.update(format=FORMAT, version=VERSION)
    return atomic_save({**body, "digest": _digest(body)}, path, verify=load_checkpoint)


def _torch_load(path: Path, map_location) -> object:
    """torch.load(weights_only=True), with torch's own errors and warnings turned into one
    CheckpointError that names the file (torch's advice to retry with weights_only=False is
    not advice for a learner)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a course checkpoint: it holds Python objects other than tensors and "
            "plain data, which safe loading refuses to run (or it is corrupt)"
        ) from None
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception:  # a truncated zip (RuntimeError, or OSError on a short one), bad records...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt and cannot be loaded "
            "(it is not a complete torch.save file)"
        ) from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The payload of a checkpoint file, loaded with weights_only=True after checking its format
    tag, its version, its digest and that the model fields are there (CheckpointError names the
    file and the field otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    payload = _torch_load(path, map_location)
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path} is not a course checkpoint: it has no 'format' field")
    tag, version = payload["format"], payload.get("version")
    if type(tag) is int and tag == 1:  # before VERSION 2 the tag was the number 1
        raise CheckpointError(
            f"{path} was written by an older course_lib (its field 'format' is 1); this one "
            f"reads {FORMAT!r} version {VERSION}: save or train it again"
        )
    if type(tag) is not str or tag != FORMAT:
        raise CheckpointError(
            f"{path} is not a course checkpoint: its field 'format' is {tag!r}, expected {FORMAT!r}"
        )
    if type(version) is not int or version != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {version!r} (field 'version'); this "
            f"course_lib reads version {VERSION}"
        )
    if _digest({k: v for k, v in payload.items() if k != "digest"}) != payload.get("digest"):
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its content does not match its digest"
        )
    missing = [k for k in MODEL_FIELDS if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {missing} of a course checkpoint")
    return payload


def restore_config(cls: type, values: object, path: str | os.PathLike, field: str = "config"):
    """`cls(**values)` for a config dataclass saved with dataclasses.asdict. An unknown or a
    missing field, or a value the config refuses, is a CheckpointError naming the file and the
    field (a checkpoint written by another version of course_lib, most likely). A field with a
    default may be missing: an option added after the file was written (GPTConfig's norm, mlp,
    qk_norm, n_kv_heads), whose default builds the model the file holds."""
    if not isinstance(values, dict):
        raise CheckpointError(
            f"{path}: field '{field}' must be a dict of {cls.__name__} fields, "
            f"got {type(values).__name__}"
        )
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in values if k not in names]
    optional = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    missing = [k for k in names if k not in values and k not in optional]
    if unknown or missing:
        problems = [f"unknown field '{field}.{k}'" for k in unknown]
        problems += [f"missing field '{field}.{k}'" for k in missing]
        raise CheckpointError(
            f"{path} does not hold a {cls.__name__} of this course_lib: {', '.join(problems)} "
            "(was it written by another version?)"
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: field '{field}' is not a valid {cls.__name__}: {e}"
        ) from None


# ---------------------------------------------------------------------------- models


def model_kind(model: nn.Module) -> str:
    """ "gpt" or "rnn": the MODEL_KINDS key of a course model."""
    for kind, (_, cls) in MODEL_KINDS.items():
        if type(model) is cls:
            return kind
    raise TypeError(f"model must be a course GPT or RNNGenerator, got {type(model).__name__}")


def model_payload(model: nn.Module, tokenizer) -> dict:
    """The plain dict {kind, config, state_dict, tokenizer} of a model and its tokenizer, ready
    for `save_checkpoint` (which adds the format tag, the version and the digest).

    The config is dataclasses.asdict(model.config); the tokenizer is {"type", "pieces"} (a
    character or word tokenizer); tensors are copied to the CPU.
    """
    kind = model_kind(model)
    if type(tokenizer) not in TOKENIZER_KINDS.values():
        raise TypeError(f"tokenizer must be a CharTokenizer or WordTokenizer, got {tokenizer!r}")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens, the model {model.config.vocab_size}"
        )
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "kind": kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": state,
        "tokenizer": {"type": tokenizer.kind, "pieces": list(tokenizer.pieces)},
    }


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer) from any course checkpoint, the trainer's included:
    `load_checkpoint`, then the model its kind and config name, with its weights."""
    payload = load_checkpoint(path, map_location)
    if payload["kind"] not in MODEL_KINDS:
        raise CheckpointError(
            f"{path}: field 'kind' is {payload['kind']!r}, expected one of {list(MODEL_KINDS)}"
        )
    config_cls, model_cls = MODEL_KINDS[payload["kind"]]
    model = model_cls(restore_config(config_cls, payload["config"], path, "config"))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: field 'state_dict' does not fit a {model_cls.__name__} of its config "
            f"({first})"
        ) from None
    tok = payload["tokenizer"]
    kind = tok.get("type") if isinstance(tok, dict) else None
    if kind not in TOKENIZER_KINDS or not isinstance(tok.get("pieces"), list):
        raise CheckpointError(
            f"{path}: field 'tokenizer' must be {{'type': one of {list(TOKENIZER_KINDS)}, "
            f"'pieces': [...]}}, got type {kind!r}"
        )
    return model.eval(), TOKENIZER_KINDS[kind](tok["pieces"])
