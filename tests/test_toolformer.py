"""course_lib.tools (the calculator, the call's text), course_lib.toolformer_data (tokenizer,
problems, corpus) and course_lib.toolformer (the paper's weights and filter, call parsing,
decoding that calls the tool)."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from course_lib import toolformer as TF
from course_lib import toolformer_data as D
from course_lib.tools import calculate, call_text

# ------------------------------------------------------------------------------- the calculator


@pytest.mark.parametrize(
    "expr, want",
    [
        ("18 + 12 * 3", "54"),  # * before +
        ("(18 + 12) * 3", "90"),
        ("10-2-3", "5"),  # left-associative (a right-associative parser says 11)
        ("8/4/2", "1"),  # (8 / 4) / 2, not 8 / (4 / 2) = 4
        ("2.5*4", "10"),
        ("723 / 252", "2.87"),  # rounded to two decimals
        ("400 / 1400", "0.29"),  # the paper's Figure 1
        (" 7 ", "7"),
        ("3-5", "-2"),
        ("-3*2", "-6"),
        ("2*-3", "-6"),
        ("0.1+0.2", "0.3"),
        ("56*419", "23464"),
        ("1/3", "0.33"),
    ],
)
def test_calculator_follows_arithmetic(expr, want):
    assert calculate(expr) == want
    ours = float(want)
    assert abs(eval(expr) - ours) <= 0.005 + 1e-9  # noqa: S307 - the test's own literals


@pytest.mark.parametrize("expr", ["1/0", "2+", "abc", "((2)", "", "2 3", "5 % 2", "2**3", None, 7])
def test_calculator_gives_no_result_for_invalid_input(expr):
    assert calculate(expr) is None


def test_call_text_is_the_papers_linearisation():
    assert call_text("56*419") == "[Calculator(56*419)]"
    assert call_text("56*419", "23464") == "[Calculator(56*419)→23464]"


# ------------------------------------------------------------------------------- tokens, texts


def test_tokenizer_round_trips_the_corpus_and_splits_numbers_into_digits():
    tok = D.ToolTokenizer()
    for text in D.make_corpus(3, 300) + D.annotation_texts(4, 100):
        assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("Max has [Calculator(56*419)→23464] 23464 coins.")
    assert [tok.pieces[i] for i in ids[2:6]] == ["[", "Calculator", "(", "5"]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("Max has 3 zebras")


def test_problems_are_right_and_the_corpus_has_its_parts():
    rng = random.Random(0)
    for hard in (True, False):
        for _ in range(200):
            p = D.make_problem(rng, hard)
            assert calculate(p.expr) == p.answer and p.text.startswith(p.prompt + " " + p.answer)
    corpus = D.make_corpus(0, 2000)
    assert corpus == D.make_corpus(0, 2000)  # a function of the seed
    share = {
        "demos": sum(t.startswith("§") for t in corpus) / 2000,
        "call notes": sum(t.startswith("[Calculator(") for t in corpus) / 2000,
    }
    assert 0.03 < share["demos"] < 0.07 and 0.08 < share["call notes"] < 0.16
    assert all("→" not in t for t in corpus if t.startswith("§"))  # demos never show a result


def test_held_out_sets_do_not_overlap_the_corpus():
    corpus = set(D.make_corpus(0, 8000))
    held = D.held_out(0)
    assert not {p.text for p in held["hard"]} & corpus
    assert len(held["plain"]) == 300


# ------------------------------------------------------------------------------- the filter


def test_weights_are_the_papers():
    w = TF.weights(5)
    torch.testing.assert_close(w, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]) / 3)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="n"):
        TF.weights(0)


class ReadsResults(nn.Module):
    """A stand-in model with a known loss: in a sequence that holds `→` it gives the true next
    token probability 0.9 (it peeks, which a test may do); elsewhere every token 1/V."""

    def __init__(self, vocab: int, arrow: int):
        super().__init__()
        self.vocab, self.arrow = vocab, arrow

    def forward(self, ids):
        b, t = ids.shape
        uniform = torch.zeros(b, t, self.vocab)
        nxt = torch.cat([ids[:, 1:], ids[:, :1]], dim=1)  # the token that follows
        peek = torch.full((b, t, self.vocab), math.log(0.1 / (self.vocab - 1)))
        peek.scatter_(-1, nxt[..., None], math.log(0.9))
        has_result = (ids == self.arrow).any(dim=1)[:, None, None]
        return torch.where(has_result, peek, uniform)


def test_the_filter_score_of_a_hand_built_case():
    tok = D.ToolTokenizer()
    model = ReadsResults(len(tok), tok.arrow)
    text = "Max packs 56 boxes of 419 coins, so Max has 23464 coins."
    j = tok.encode(text).index(tok.index["2"])  # the answer's first digit
    c = TF.filter_scores(model, tok, [text], [TF.Candidate(0, j, "56*419", "23464")])[0]
    # L(empty) = L(call without result) = log V (uniform, weights sum to 1); L+ = -log 0.9
    assert math.isclose(c.score, math.log(len(tok)) + math.log(0.9), rel_tol=1e-5)
    assert TF.result_is_right(tok, text, c)
    assert not TF.result_is_right(tok, text, TF.Candidate(0, j, "56*418", "23406"))
    # near the end of a text fewer than five tokens count, with their own weights
    seq = [tok.newline, *tok.encode(text)]
    end = TF.weighted_losses(model, [seq], [len(seq) - 2])[0]
    assert math.isclose(
        float(end), float(TF.weights(5)[:2].sum()) * math.log(len(tok)), rel_tol=1e-5
    )


def test_augment_inserts_the_best_kept_call_before_its_position():
    tok = D.ToolTokenizer()
    text = "Max packs 56 boxes of 419 coins, so Max has 23464 coins."
    j = tok.encode(text).index(tok.index["2"])
    weak, best = (
        TF.Candidate(0, j, "56*418", "23408", 1.2),
        TF.Candidate(0, j, "56*419", "23464", 3.0),
    )
    out = TF.augment(tok, [text, "The red fox sleeps near the old barn."], [weak, best])
    assert out == [
        "Max packs 56 boxes of 419 coins, so Max has [Calculator(56*419)→23464] 23464 coins."
    ]


def test_parse_call_accepts_only_a_calculator_call():
    tok = D.ToolTokenizer()
    ok = tok.encode("Calculator(56*419)")
    assert TF.parse_call(tok, ok) == "56*419"
    assert TF.parse_call(tok, tok.encode("Calculator(56 coins)")) is None
    assert TF.parse_call(tok, tok.encode("Calculator 56")) is None


# ------------------------------------------------------------------------------- decoding


class Scripted(nn.Module):
    """Greedy decoding of this stand-in writes `script` one token a step (the runner-up: a
    full stop); inserted tokens advance nothing, so a test sees what the decoder did."""

    def __init__(self, tok, script: str):
        super().__init__()
        self.tok, self.script, self.step = tok, tok.encode(script), 0
        self.config = SimpleNamespace(block_size=64)

    def new_cache(self, batch):
        return SimpleNamespace(length=0)

    def forward(self, ids, cache=None):
        cache.length += ids.shape[1]
        logits = torch.zeros(1, ids.shape[1], len(self.tok))
        logits[0, -1, self.tok.index["."]] = 1.0
        if self.step < len(self.script):
            logits[0, -1, self.script[self.step]] = 2.0
        self.step += 1
        return logits


def test_the_tool_runs_at_the_arrow_and_its_result_is_inserted():
    tok = D.ToolTokenizer()
    model = Scripted(tok, "[Calculator(56*419)→ 9 coins.\n")
    a = TF.solve(model, tok, "Max packs 56 boxes of 419 coins, so Max has", "tool")
    assert a.text.startswith("[Calculator(56*419)→23464]") and a.called
    assert a.number == "9"  # the first number after the call: what the model wrote next


def test_disabled_never_opens_a_call_and_plain_does_not_run_the_tool():
    tok = D.ToolTokenizer()
    a = TF.solve(Scripted(tok, "[Calculator(2+2)→5] 5\n"), tok, "Ann has", "disabled")
    assert not a.called and "[" not in a.text
    b = TF.solve(Scripted(tok, "[Calculator(2+2)→5] 5\n"), tok, "Ann has", "plain")
    assert b.text.startswith("[Calculator(2+2)→5]") and not b.called
    with pytest.raises(ValueError, match="mode must be one of"):
        TF.solve(Scripted(tok, "."), tok, "Ann has", "always")
