"""course_lib.pretrained: the packaged MiniLM is found, verified, and its references load."""

import shutil

import pytest

from course_lib import data, pretrained


def test_files_are_found_and_verified():
    folder = pretrained.minilm_dir()
    assert (folder / "model.safetensors").is_file()
    manifest = data.load_manifest()["pretrained"][pretrained.MODEL]
    assert set(manifest["files"]) >= {
        "model.safetensors",
        "vocab.txt",
        "tokenizer.json",
        "config.json",
    }
    assert "Apache-2.0" in manifest["licence"] and "MIT" in manifest["licence"]


def test_config_and_vocab():
    cfg = pretrained.config()
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (
        384,
        6,
        12,
    )
    vocab = pretrained.vocab()
    assert len(vocab) == cfg["vocab_size"] == 30522
    assert vocab[:1] == ["[PAD]"] and vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_describe_states_the_licences():
    text = pretrained.describe()
    assert "Apache-2.0" in text and "MIT" in text and "6 layers" in text


@pytest.fixture
def minilm_copy(tmp_path, monkeypatch):
    src = pretrained.minilm_dir()
    copy = tmp_path / "minilm"
    for rel in data.load_manifest()["pretrained"][pretrained.MODEL]["files"]:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == "model.safetensors":
            (copy / rel).symlink_to(src / rel)
        else:
            shutil.copy(src / rel, copy / rel)
    monkeypatch.setenv("COURSE_MINILM_DIR", str(copy))
    return copy


def test_override_directory(minilm_copy):
    assert pretrained.minilm_dir() == minilm_copy


def test_a_changed_file_is_named(minilm_copy):
    vocab = minilm_copy / "vocab.txt"
    vocab.write_text(vocab.read_text().replace("[UNK]", "[???]"))
    with pytest.raises(data.ChecksumError, match=r"vocab.txt: sha256 .* does not match"):
        pretrained.minilm_dir()


def test_a_missing_file_is_named(minilm_copy):
    (minilm_copy / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        pretrained.minilm_dir()


def test_override_must_be_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_MINILM_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="COURSE_MINILM_DIR=.* is not a folder"):
        pretrained.minilm_dir()


def test_reference_tokenizer_loads_offline():
    tok = pretrained.reference_tokenizer()
    enc = tok("Café naïve")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "cafe", "naive", "[SEP]"]


def test_sentence_model_bad_device():
    with pytest.raises(TypeError, match="device must be a string"):
        pretrained.sentence_model(device=0)
