"""course_lib.generate: the sampling filters, the generation loop, the CLI on a checkpoint (the
format itself: tests/test_checkpoints.py), bad input, and notebook 08's decoding and perplexity
exercises in its answer key, course_lib.exercises.nb08 (wrong answers are named)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from exercise_helpers import learner
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from course_lib import checkpoints, rnn, tokenizers, transformer
from course_lib import generate as G
from course_lib.exercises import nb08

F32 = dict(rtol=1e-5, atol=1e-6)


def _logits(b, v, seed=0, scale=3.0):
    return torch.randn(b, v, generator=torch.Generator().manual_seed(seed)) * scale


# --------------------------------------------------------------------------- the filters


@pytest.mark.parametrize("b, v, k", [(1, 1, 1), (1, 7, 3), (3, 11, 1), (4, 50, 11), (2, 9, 9)])
def test_top_k_equals_hugging_face(b, v, k):
    z = _logits(b, v, seed=v)
    ref = TopKLogitsWarper(top_k=k)(None, z.clone())
    torch.testing.assert_close(G.top_k_filter(z, k), ref, **F32)


@pytest.mark.parametrize(
    "b, v, p", [(1, 1, 0.5), (1, 7, 0.3), (3, 11, 0.9), (4, 50, 0.95), (2, 9, 1.0)]
)
def test_top_p_equals_hugging_face(b, v, p):
    z = _logits(b, v, seed=v + 1)
    ref = TopPLogitsWarper(top_p=p, min_tokens_to_keep=1)(None, z.clone())
    torch.testing.assert_close(G.top_p_filter(z, p), ref, **F32)


def test_top_p_keeps_the_smallest_set_reaching_p():
    z = torch.log(torch.tensor([[0.1, 0.5, 0.15, 0.25]]))
    kept = torch.isfinite(G.top_p_filter(z, 0.7))[0].tolist()
    assert kept == [False, True, False, True]  # 0.5 + 0.25 >= 0.7
    assert torch.isfinite(G.top_p_filter(z, 1e-6)).sum() == 1  # the top token always stays


def test_filters_do_not_change_their_input_and_work_on_non_contiguous_rows():
    z = _logits(6, 8, seed=5).t()  # (8, 6), not contiguous
    before = z.clone()
    G.top_k_filter(z, 2), G.top_p_filter(z, 0.5), G.next_token_probs(z, 0.7, 3, 0.9)
    assert torch.equal(z, before)
    torch.testing.assert_close(G.top_k_filter(z, 2), G.top_k_filter(z.contiguous(), 2))


def test_next_token_probs_composes_temperature_top_k_top_p():
    z = _logits(3, 20, seed=9)
    x = TopKLogitsWarper(top_k=5)(None, z / 0.7)
    x = TopPLogitsWarper(top_p=0.8)(None, x)
    probs = G.next_token_probs(z, temperature=0.7, top_k=5, top_p=0.8)
    torch.testing.assert_close(probs, torch.softmax(x, dim=-1), **F32)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3), **F32)
    assert torch.equal(G.greedy(z), z.argmax(-1, keepdim=True))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: G.apply_temperature(_logits(1, 4), 0.0), ValueError, "temperature must be > 0"),
        (lambda: G.next_token_probs(_logits(1, 4), -1.0), ValueError, "temperature must be > 0"),
        (lambda: G.apply_temperature(_logits(1, 4), "hot"), TypeError, "temperature"),
        (lambda: G.top_p_filter(_logits(1, 4), 0.0), ValueError, "top_p must be in (0, 1]"),
        (lambda: G.top_p_filter(_logits(1, 4), 1.5), ValueError, "top_p must be in (0, 1]"),
        (lambda: G.top_k_filter(_logits(1, 4), 5), ValueError, "larger than the vocabulary"),
        (lambda: G.top_k_filter(_logits(1, 4), 0), ValueError, "k must be a positive int"),
        (lambda: G.top_k_filter(torch.zeros(4), 1), ValueError, "(batch, vocab"),
        (lambda: G.greedy(torch.zeros(2, 3, dtype=torch.long)), TypeError, "float"),
    ],
)
def test_bad_sampling_input_is_named(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# --------------------------------------------------------------------------- generation


def _gpt(v=13, block=8):
    torch.manual_seed(0)
    return transformer.GPT(transformer.GPTConfig(v, block, 16, 2, 1, 32)).eval()


def _lstm(v=13):
    torch.manual_seed(0)
    return rnn.RNNGenerator(rnn.RNNConfig(v, 8, 12, 1)).eval()


@pytest.mark.parametrize("make", [_gpt, _lstm])
def test_greedy_generation_equals_argmax_step_by_step(make):
    model = make()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = G.generate(model, ids, 12, do_sample=False)  # runs past the GPT's block of 8
    assert out.shape == (2, 15) and torch.equal(out[:, :3], ids)
    block = getattr(model.config, "block_size", None)
    for t in range(3, 15):
        ctx = out[:, :t] if block is None else out[:, max(0, t - block) : t]
        with torch.no_grad():
            assert torch.equal(out[:, t], model(ctx)[:, -1].argmax(-1))


def test_sampling_is_reproducible_with_a_generator_and_restores_training_mode():
    model = _gpt().train()
    ids = torch.tensor([[3]])
    a = G.generate(model, ids, 10, top_k=4, generator=torch.Generator().manual_seed(1))
    b = G.generate(model, ids, 10, top_k=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and model.training
    assert torch.equal(G.generate(model, ids, 0), ids)


def test_top_k_one_sampling_is_greedy():
    model = _lstm()
    ids = torch.tensor([[2, 7]])
    assert torch.equal(
        G.generate(model, ids, 9, top_k=1), G.generate(model, ids, 9, do_sample=False)
    )


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(ids=torch.zeros(1, 0, dtype=torch.long)), ValueError, "prompt is empty"),
        (dict(ids=torch.zeros(0, 3, dtype=torch.long)), ValueError, "prompt is empty"),
        (dict(ids=torch.zeros(3, dtype=torch.long)), ValueError, "(batch, seq)"),
        (dict(ids=torch.zeros(1, 2)), TypeError, "integer tensor"),
        (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
        (dict(temperature=0), ValueError, "temperature must be > 0"),
        (dict(top_p=1.01), ValueError, "top_p"),
        (dict(top_k=14), ValueError, "larger than the vocabulary"),
    ],
)
def test_bad_generate_input_is_named(kwargs, exc, words):
    args = dict(ids=torch.tensor([[1, 2]]), max_new_tokens=3) | kwargs
    with pytest.raises(exc) as info:
        G.generate(_gpt(), args.pop("ids"), args.pop("max_new_tokens"), **args)
    assert words in str(info.value)


# --------------------------------------------------------------------------- the CLI


TEXT = "Hello, wörld! 你好 hello again.\n"


def test_complete_refuses_an_empty_prompt():
    tok = tokenizers.CharTokenizer.train(TEXT)
    with pytest.raises(ValueError, match="prompt is empty"):
        G.complete(_gpt(v=tok.vocab_size), tok, "", 5)


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "course_lib.generate", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_cli_continues_a_prompt_like_complete(tmp_path):
    tok = tokenizers.WordTokenizer.train(TEXT)
    torch.manual_seed(0)
    model = rnn.RNNGenerator(rnn.RNNConfig(tok.vocab_size, 4, 6, 1, cell="gru"))
    path = checkpoints.save_checkpoint(tmp_path / "w.pt", checkpoints.model_payload(model, tok))
    run = _cli(
        "--checkpoint",
        str(path),
        "--prompt",
        "hello",
        "--max-new-tokens",
        "7",
        "--top-p",
        "0.9",
        "--seed",
        "3",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == G.complete(model, tok, "hello", 7, top_p=0.9, seed=3) + "\n"
    greedy = _cli(
        "--checkpoint", str(path), "--prompt", "hello", "--max-new-tokens", "4", "--greedy"
    )
    assert greedy.stdout == G.complete(model, tok, "hello", 4, do_sample=False) + "\n"
    empty = _cli("--checkpoint", str(path), "--prompt", "")
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr
    hot = _cli("--checkpoint", str(path), "--prompt", "hello", "--temperature", "0")
    assert hot.returncode == 2 and "temperature must be > 0" in hot.stderr


def _renewed(src: Path, dst: Path, change) -> Path:
    """A copy of checkpoint `src` with `change(payload)` applied and a matching digest."""
    payload = torch.load(src, weights_only=True)
    payload.pop("digest")
    change(payload)
    torch.save({**payload, "digest": checkpoints._digest(payload)}, dst)
    return dst


def test_cli_names_a_bad_checkpoint_without_a_traceback(tmp_path):
    """An unknown config field was a TypeError traceback; a corrupt file printed torch's
    weights_only advice or, with its tensors damaged, went unnoticed (no digest check)."""
    tok = tokenizers.CharTokenizer.train(TEXT)
    model = transformer.GPT(transformer.GPTConfig(tok.vocab_size, 16, 8, 2, 1, 16))
    good = checkpoints.save_checkpoint(tmp_path / "g.pt", checkpoints.model_payload(model, tok))
    _renewed(good, tmp_path / "extra.pt", lambda p: p["config"].update(colour="red"))
    raw = good.read_bytes()
    needle = model.state_dict()["tok_emb.weight"].reshape(-1)[:8].numpy().tobytes()
    at = raw.index(needle)
    flipped = raw[:at] + bytes(b ^ 0xFF for b in raw[at : at + 4]) + raw[at + 4 :]
    (tmp_path / "flipped.pt").write_bytes(flipped)
    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "object.pt")
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    cases = {
        "extra.pt": "unknown field 'config.colour'",
        "flipped.pt": "is corrupt: its content does not match its digest",
        "object.pt": "is not a course checkpoint",
        "cut.pt": "is truncated or corrupt",
        "missing.pt": "no checkpoint at",
    }
    for name, words in cases.items():
        run = _cli("--checkpoint", str(tmp_path / name), "--prompt", "hello")
        assert run.returncode == 2, (name, run.stderr)
        assert run.stderr.startswith("error: ") and words in run.stderr, (name, run.stderr)
        assert str(tmp_path / name) in run.stderr and run.stdout == ""
        for torch_words in ("Traceback", "weights_only", "PytorchStreamReader"):
            assert torch_words not in run.stderr, (name, run.stderr)


# --------------------------------------------------------------------------- exercises
# Notebook 08's check cells call the answer key (course_lib.exercises.nb08): a right answer
# passes, the stub says "not yet" and each named mistake is recognised, tried here without the
# notebook. (Its training-loop exercise is tested with the trainer: tests/test_train.py.)


def _verdicts(exercise, signature, bodies):
    return [exercise(learner(signature, body), quiet=True).message for body in bodies]


def test_exercise_top_k_wrong_answers_are_named():
    right, stub, smallest, zero, batch = _verdicts(
        nb08.top_k_filter,
        "def top_k_filter(logits, k):",
        [
            "kth = torch.topk(logits, k, dim=-1).values[:, -1:]\n"
            "return logits.masked_fill(logits < kth, float('-inf'))",
            "raise NotImplementedError",
            "kth = torch.topk(logits, k, dim=-1, largest=False).values[:, -1:]\n"
            "return logits.masked_fill(logits > kth, float('-inf'))",
            "kth = torch.topk(logits, k, dim=-1).values[:, -1:]\n"
            "return logits.masked_fill(logits < kth, 0.0)",
            "kth = torch.topk(logits.flatten(), k).values[-1]\n"
            "return logits.masked_fill(logits < kth, float('-inf'))",
        ],
    )
    assert right == "top_k_filter: all 4 cases pass. Well done!"
    assert stub.startswith("top_k_filter: not yet.")
    assert "hint: this looks like the k smallest kept" in smallest
    assert "hint: this looks like dropped tokens set to 0" in zero
    assert "hint: this looks like the threshold of the whole batch" in batch


def test_exercise_top_p_wrong_answers_are_named():
    right, stub, including, unsorted = _verdicts(
        nb08.top_p_filter,
        "def top_p_filter(logits, p):",
        [
            "s, o = torch.sort(logits, dim=-1, descending=True)\n"
            "pr = torch.softmax(s, dim=-1)\n"
            "before = torch.cumsum(pr, dim=-1) - pr\n"
            "drop = torch.zeros_like(before, dtype=torch.bool).scatter(-1, o, before >= p)\n"
            "return logits.masked_fill(drop, float('-inf'))",
            "raise NotImplementedError",
            "s, o = torch.sort(logits, dim=-1, descending=True)\n"
            "cum = torch.cumsum(torch.softmax(s, dim=-1), dim=-1)\n"
            "drop = torch.zeros_like(cum, dtype=torch.bool).scatter(-1, o, cum >= p)\n"
            "return logits.masked_fill(drop, float('-inf'))",
            "pr = torch.softmax(logits, dim=-1)\n"
            "return logits.masked_fill(torch.cumsum(pr, dim=-1) - pr >= p, float('-inf'))",
        ],
    )
    assert right == "top_p_filter: all 4 cases pass. Well done!"
    assert stub.startswith("top_p_filter: not yet.")
    assert "hint: this looks like the mass including the token" in including
    assert "hint: this looks like no sorting" in unsorted


def test_exercise_perplexity_wrong_answers_are_named():
    right, stub, no_exp, summed, base_2 = _verdicts(
        nb08.perplexity,
        "def perplexity(logits, targets):",
        [
            "logp = torch.log_softmax(logits.double(), dim=-1)\n"
            "return math.exp(-logp.gather(1, targets[:, None]).mean().item())",
            "raise NotImplementedError",
            "logp = torch.log_softmax(logits.double(), dim=-1)\n"
            "return -logp.gather(1, targets[:, None]).mean().item()",
            "logp = torch.log_softmax(logits.double(), dim=-1)\n"
            "return math.exp(-logp.gather(1, targets[:, None]).sum().item())",
            "logp = torch.log_softmax(logits.double(), dim=-1)\n"
            "return 2 ** (-logp.gather(1, targets[:, None]).mean().item())",
        ],
    )
    assert right == "perplexity: all 4 cases pass. Well done!"
    assert stub.startswith("perplexity: not yet.")
    assert "hint: this looks like the mean loss, not its exp" in no_exp
    assert "hint: this looks like exp of the summed loss" in summed
    assert "hint: this looks like base 2" in base_2
