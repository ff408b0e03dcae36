"""all-MiniLM-L6-v2's weights in course_lib.bert.Bert equal the reference libraries."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from course_lib import bert, pretrained
from course_lib import transformer as T
from course_lib.wordpiece import WordPieceTokenizer

ATOL = 1e-5  # CONVENTIONS: a pretrained model's outputs agree to 1e-5

SENTENCES = [
    "The Transformer replaced recurrence with attention.",
    "大语言模型可以生成文本。",  # Chinese: one token per character, many [UNK]
    "Crème brûlée, naïve café — résumé!",  # accents stripped by the uncased tokenizer
    "Robots 🤖 and parties 🎉🎉",  # emoji: [UNK]
    "",  # empty: [CLS] [SEP] only
    "x",  # one token
    "A long text about language models. " * 80,  # ~480 tokens: truncated to 256
]


@pytest.fixture(scope="module")
def models():
    return pretrained.minilm_encoder(), pretrained.sentence_model("cpu")


@pytest.fixture(scope="module")
def batch(models):
    _, reference = models
    tok = WordPieceTokenizer(pretrained.vocab())
    enc = tok.encode_batch(SENTENCES, max_length=reference.max_seq_length)
    ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
    ref = reference.tokenizer(
        SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"])
    assert ids.shape[1] == 256 and mask.sum(1).min() == 2
    return ids, mask


@pytest.fixture(scope="module")
def outputs(models, batch):
    ours_model, reference = models
    ids, mask = batch
    with torch.no_grad():
        ours = ours_model(ids, attention_mask=mask)
        theirs = reference[0].auto_model(
            input_ids=ids, attention_mask=mask, output_hidden_states=True
        )
    return ours, theirs


def test_every_checkpoint_tensor_has_a_home_and_every_parameter_a_tensor():
    state = load_file(str(pretrained.minilm_dir() / "model.safetensors"))
    names = pretrained.minilm_name_map(6)
    assert set(state) - pretrained.NOT_WEIGHTS == set(names)
    model = bert.Bert(bert.BertConfig())
    assert set(names.values()) == set(model.state_dict())
    for hf, ours in names.items():
        assert state[hf].shape == model.state_dict()[ours].shape, hf


def test_rename_errors():
    with pytest.raises(KeyError, match="no course name for \\['encoder.layer.9"):
        pretrained.rename_weights({"encoder.layer.9.output.dense.weight": torch.zeros(1)}, 6)
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        pretrained.minilm_name_map(0)


def test_weights_loaded_exactly(models):
    ours, reference = models
    hf = reference[0].auto_model
    torch.testing.assert_close(
        ours.embeddings.word.weight, hf.embeddings.word_embeddings.weight, rtol=0, atol=0
    )
    torch.testing.assert_close(
        ours.layers[3].attn.v_proj.weight,
        hf.encoder.layer[3].attention.self.value.weight,
        rtol=0,
        atol=0,
    )
    assert T.count_parameters(ours) == sum(p.numel() for p in hf.parameters()) == 22_713_216
    assert not ours.training


def test_hidden_states_equal_on_real_tokens(outputs, batch):
    ours, theirs = outputs
    real = batch[1].bool()
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 7
    for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], rtol=0, atol=ATOL)
    torch.testing.assert_close(ours.pooler_output, theirs.pooler_output, rtol=0, atol=ATOL)


def test_sentence_embeddings_equal(models, outputs, batch):
    _, reference = models
    ours, _ = outputs
    vectors = F.normalize(bert.mean_pool(ours.last_hidden_state, batch[1]), dim=-1)
    ref = reference.encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(vectors, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_one_sentence_alone_equals_its_row_in_the_batch(models, outputs, batch):
    ours_model, reference = models
    ids, mask = batch
    n = int(mask[1].sum())
    with torch.no_grad():
        alone = ours_model(ids[1:2, :n]).last_hidden_state
        ref = reference[0].auto_model(input_ids=ids[1:2, :n]).last_hidden_state
    torch.testing.assert_close(alone, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(alone[0], outputs[0].last_hidden_state[1, :n], rtol=0, atol=ATOL)


def test_too_long_input_is_refused(models):
    ours, _ = models
    with pytest.raises(ValueError, match="at most 512"):
        ours(torch.zeros(1, 513, dtype=torch.long))


def test_loading_the_reference_stores_no_progress_bar(models):
    # a "Loading weights" bar is a widget in Jupyter, which a notebook would store: it is off
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled()
