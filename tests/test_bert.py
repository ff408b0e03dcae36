"""course_lib.bert: shapes, masks, pooling, configs and parameter counts (against the real
all-MiniLM-L6-v2: test_minilm_model.py)."""

import pytest
import torch

from course_lib import bert
from course_lib import transformer as T


def close(a, b, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=atol)


def small(**kw):
    sizes = dict(vocab_size=50, max_position=16, d_model=8, n_heads=2, n_layers=2, d_ff=12)
    return bert.BertConfig(**{**sizes, **kw})


def test_hidden_states_mask_and_pooling():
    torch.manual_seed(7)
    model = bert.Bert(small(n_layers=3)).eval()
    ids = torch.randint(5, 50, (2, 6))
    am = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    out = model(ids, am)
    assert len(out.hidden_states) == 4 and out.last_hidden_state.shape == (2, 6, 8)
    assert out.pooler_output.shape == (2, 8)
    alone = model(ids[1:, :4]).last_hidden_state
    close(out.last_hidden_state[1:, :4], alone, atol=1e-5)  # padding changes nothing real
    pooled = bert.mean_pool(out.last_hidden_state, am)
    close(pooled[1], alone[0].mean(0))
    with pytest.raises(ValueError, match="attention_mask shape"):
        model(ids, am[:, :3])
    with pytest.raises(ValueError, match="must agree"):
        bert.mean_pool(out.last_hidden_state, am[:, :3])
    with pytest.raises(ValueError, match="token_type_ids must have the shape of input_ids"):
        model(ids, am, token_type_ids=torch.zeros(2, 5, dtype=torch.long))


def test_blocks_are_post_norm_encoder_blocks():
    model = bert.Bert(small(eps=1e-12))
    assert all(type(b) is T.EncoderBlock and not b.norm_first for b in model.layers)
    assert model.layers[0].norm1.eps == 1e-12 and model.embeddings.norm.eps == 1e-12


@pytest.mark.parametrize("cfg", [small(), small(n_layers=1, type_vocab_size=3, pooler=False)])
def test_parameter_count_formula(cfg):
    assert T.count_parameters(bert.Bert(cfg)) == bert.parameters_by_formula(cfg)


def test_known_parameter_count_and_wrong_configs():
    assert bert.parameters_by_formula(bert.BertConfig()) == 22_713_216  # all-MiniLM-L6-v2
    with pytest.raises(TypeError, match="config must be a BertConfig, got dict"):
        bert.parameters_by_formula({"d_model": 4})
    with pytest.raises(TypeError, match="course_lib.bert.parameters_by_formula"):
        T.parameters_by_formula(bert.BertConfig())
    with pytest.raises(TypeError, match="config must be a BertConfig, got GPTConfig"):
        bert.Bert(T.GPTConfig(10, 8, 8, 2, 1, 8))
    with pytest.raises(TypeError, match="config must be a GPTConfig, got BertConfig"):
        T.GPT(bert.BertConfig())


def test_config_errors():
    with pytest.raises(ValueError, match="n_layers must be a positive integer, got 0"):
        bert.BertConfig(n_layers=0)
    with pytest.raises(TypeError, match="n_layers must be an integer, got bool True"):
        bert.BertConfig(n_layers=True)
    with pytest.raises(ValueError, match="not divisible"):
        bert.BertConfig(d_model=10, n_heads=4)


def test_empty_sequences_are_refused_and_an_empty_batch_is_empty():
    model = bert.Bert(small(vocab_size=10, max_position=8, n_layers=1, d_ff=16)).eval()
    with pytest.raises(ValueError, match=r"input_ids must hold at least one position"):
        model(torch.zeros(1, 0, dtype=torch.long))
    assert model(torch.zeros(0, 3, dtype=torch.long)).last_hidden_state.shape == (0, 3, 8)
    with pytest.raises(ValueError, match="input_ids has 9 positions, the model holds at most 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_config_from_hf():
    cfg = bert.BertConfig.from_hf(
        {
            "vocab_size": 100,
            "max_position_embeddings": 32,
            "type_vocab_size": 2,
            "hidden_size": 16,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
        }
    )
    assert (cfg.d_model, cfg.n_heads, cfg.eps, cfg.activation) == (16, 4, 1e-12, "gelu")
    with pytest.raises(ValueError, match="absolute position"):
        bert.BertConfig.from_hf({"position_embedding_type": "relative_key"})
