"""course_lib.tokenizers: every public function, its properties, and its errors.

The comparisons with the reference implementations (Hugging Face `tokenizers`, the MiniLM
tokenizer, jieba) are in test_tokenizer_reference.py.
"""

import json
import subprocess
import sys
import tracemalloc
from collections import Counter

import numpy as np
import pytest
import torch
from exercise_helpers import learner
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import data, tokenizers
from course_lib.exercises import nb01

# --------------------------------------------------------------------------- 1. cleaning


def test_split_words():
    assert tokenizers.split_words("O'er the hills, 'tis 3 miles!") == [
        "o'er",
        "the",
        "hills",
        "tis",
        "miles",
    ]
    assert tokenizers.split_words("Hamlet SPEAKS", lower=False) == ["Hamlet", "SPEAKS"]
    assert tokenizers.split_words("") == []
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.split_words(None)


def test_clean_text():
    messy = "  Cafe\u0301\tis\u200b open!\n\n\x07Come   in. "
    assert tokenizers.clean_text(messy) == "Café is open! Come in."
    assert tokenizers.clean_text("") == ""
    assert tokenizers.clean_text(" \n\t ") == ""
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.clean_text(b"bytes")


@given(st.text())
def test_clean_text_is_idempotent_and_tidy(s):
    once = tokenizers.clean_text(s)
    assert tokenizers.clean_text(once) == once
    assert "  " not in once and once == once.strip()


def test_remove_stop_words_changes_meaning():
    assert tokenizers.remove_stop_words("I do not love you".split()) == ["love"]
    assert tokenizers.remove_stop_words("I do love you".split()) == ["love"]
    assert tokenizers.remove_stop_words(["The", "KING"], stop_words={"the"}) == ["KING"]
    assert tokenizers.remove_stop_words([]) == []
    with pytest.raises(TypeError, match="words must be a list of words"):
        tokenizers.remove_stop_words("the king")


# --------------------------------------------------------------------------- 2. Chinese words

TOY = {"研究", "研究生", "生命", "命", "的", "起源"}


def test_maximum_matching_on_the_classic_ambiguity():
    text = "研究生命的起源"
    assert tokenizers.forward_max_match(text, TOY, 3) == ["研究生", "命", "的", "起源"]
    assert tokenizers.backward_max_match(text, TOY, 3) == ["研究", "生命", "的", "起源"]
    assert tokenizers.forward_max_match(text, TOY, 1) == list(text)
    assert tokenizers.backward_max_match(text, TOY, 1) == list(text)


def test_maximum_matching_edges():
    for fn in (tokenizers.forward_max_match, tokenizers.backward_max_match):
        assert fn("", TOY, 4) == []
        assert fn("x", set(), 4) == ["x"]
        assert fn("起源。", TOY, 10) == ["起源", "。"]  # unknown characters stand alone
        for bad in (0, -1):
            with pytest.raises(ValueError, match="max_len must be >= 1"):
                fn("起源", TOY, bad)
        for bad in (2.5, True, None, "2"):
            with pytest.raises(TypeError, match="max_len must be an integer, got"):
                fn("起源", TOY, bad)
        with pytest.raises(TypeError, match="text must be a string"):
            fn(["起源"], TOY, 2)


@given(
    st.text(alphabet="研究生命的起源。ab", max_size=30),
    st.integers(min_value=1, max_value=5),
)
def test_maximum_matching_segments_the_text(text, max_len):
    for fn in (tokenizers.forward_max_match, tokenizers.backward_max_match):
        words = fn(text, TOY, max_len)
        assert "".join(words) == text
        assert all(len(w) == 1 or (w in TOY and len(w) <= max_len) for w in words)


def test_load_word_dict(tmp_path):
    f = tmp_path / "dict.txt"
    f.write_text("研究 120 vn\n起源 30\n\n生命 80 n\n", encoding="utf-8")
    assert tokenizers.load_word_dict(f) == {"研究": 120, "起源": 30, "生命": 80}
    f.write_text("研究\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: expected 'word frequency"):
        tokenizers.load_word_dict(f)
    f.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no words"):
        tokenizers.load_word_dict(f)


def test_jieba_dictionary_is_found_and_loads():
    path = tokenizers.jieba_dict_path()
    assert path.name == "dict.txt" and path.parent.name == "jieba"
    words = tokenizers.load_word_dict(path)
    assert len(words) > 300_000 and words["天气"] > 0


def test_jieba_cut_is_deterministic_and_silent():
    # A fresh interpreter, so that jieba initialises inside the call: nothing reaches stderr.
    code = (
        "from course_lib.tokenizers import jieba_cut\n"
        "print('|'.join(jieba_cut('今天的天气很好，阳光明媚。')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    assert run.stdout.strip() == "今天|的|天气|很|好|，|阳光明媚|。"
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.jieba_cut(None)


def test_segmentation_agreement():
    pred = [["研究生", "命", "的", "起源"], ["你好"]]
    gold = [["研究", "生命", "的", "起源"], ["你好"]]
    scores = tokenizers.segmentation_agreement(pred, gold)
    # right words: 的, 起源, 你好 = 3 of 5 predicted and 3 of 5 reference
    assert scores == pytest.approx(dict(precision=0.6, recall=0.6, f1=0.6, exact=0.5))
    assert tokenizers.segmentation_agreement(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError, match="not of the same text"):
        tokenizers.segmentation_agreement([["研究"]], [["研究生"]])
    with pytest.raises(ValueError, match="equally long, non-empty"):
        tokenizers.segmentation_agreement(pred, gold[:1])
    with pytest.raises(ValueError, match="equally long, non-empty"):
        tokenizers.segmentation_agreement([], [])


# --------------------------------------------------------------------------- 3. char and word


def test_char_tokenizer_round_trip_and_unknowns():
    tok = tokenizers.CharTokenizer.train("hello world")
    assert tok.pieces == ["<unk>", " ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 9
    assert tok.decode(tok.encode("hello")) == "hello"
    ids = tok.encode("hé!")
    assert ids == [4, 0, 0]
    assert tok.decode(ids) == "h<unk><unk>"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_char_tokenizer_keeps_the_most_frequent():
    tok = tokenizers.CharTokenizer.train("aaabbc", vocab_size=3)
    assert tok.pieces == ["<unk>", "a", "b"]
    tie = tokenizers.CharTokenizer.train("ba", vocab_size=2)  # a tie goes to the sorted first
    assert tie.pieces == ["<unk>", "a"]


@pytest.mark.parametrize("cls", [tokenizers.CharTokenizer, tokenizers.WordTokenizer])
def test_piece_tokenizer_errors(cls, tmp_path):
    with pytest.raises(ValueError, match="text must not be empty"):
        cls.train("")
    with pytest.raises(TypeError, match="text must be a string"):
        cls.train(None)
    for bad in (1, 0):
        with pytest.raises(ValueError, match="vocab_size must be >= 2"):
            cls.train("some text", vocab_size=bad)
    for bad in (2.0, True, "5"):
        with pytest.raises(TypeError, match="vocab_size must be an integer, got"):
            cls.train("some text", vocab_size=bad)
    tok = cls.train("some text")
    for bad in (tok.vocab_size, -1):
        with pytest.raises(ValueError, match="is not in this vocabulary"):
            tok.decode([bad])
    for bad in (1.0, "a"):
        with pytest.raises(TypeError, match=r"ids\[0\] must be an integer"):
            tok.decode([bad])
    with pytest.raises(TypeError, match="text must be a string"):
        tok.encode(["some"])
    with pytest.raises(ValueError, match="must start with '<unk>'"):
        cls(["a", "b"])
    with pytest.raises(ValueError, match="must not repeat"):
        cls(["<unk>", "a", "a"])


@pytest.mark.parametrize("cls", [tokenizers.CharTokenizer, tokenizers.WordTokenizer])
def test_piece_tokenizer_save_and_load(cls, tmp_path):
    tok = cls.train("To be, or not to be: that is the question. 生存还是毁灭")
    path = tmp_path / "tok.json"
    tok.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))  # plain JSON
    assert saved == {"type": cls.kind, "pieces": tok.pieces}
    again = cls.load(path)
    assert again.pieces == tok.pieces
    assert again.encode("or not to be") == tok.encode("or not to be")
    other = (
        tokenizers.WordTokenizer if cls is tokenizers.CharTokenizer else tokenizers.CharTokenizer
    )
    with pytest.raises(ValueError, match=f"not a '{other.kind}' one"):
        other.load(path)


@given(st.text(min_size=1), st.text())
def test_char_tokenizer_properties(train, other):
    tok = tokenizers.CharTokenizer.train(train)
    assert tok.decode(tok.encode(train)) == train
    ids = tok.encode(other)
    assert len(ids) == len(other)
    assert ids.count(0) == sum(c not in set(train) for c in other)


@given(st.text())
def test_word_pieces_concatenate_to_the_text(s):
    assert "".join(tokenizers.WordTokenizer.split(s)) == s


@given(st.text(min_size=1))
def test_word_tokenizer_round_trip(s):
    tok = tokenizers.WordTokenizer.train(s)
    assert tok.decode(tok.encode(s)) == s


@given(st.text(alphabet="ab .,\n", min_size=1), st.text(alphabet="abc .,;\n"))
def test_word_tokenizer_maps_exactly_the_unseen_pieces_to_unk(train, other):
    tok = tokenizers.WordTokenizer.train(train)
    seen = set(tokenizers.WordTokenizer.split(train))
    pieces = tokenizers.WordTokenizer.split(other)
    ids = tok.encode(other)
    assert len(ids) == len(pieces)
    assert [i == 0 for i in ids] == [p not in seen for p in pieces]
    assert tok.decode(ids) == "".join(p if p in seen else "<unk>" for p in pieces)


def test_word_tokenizer():
    tok = tokenizers.WordTokenizer.train("The king, the KING; o'er the king!", vocab_size=6)
    assert tokenizers.WordTokenizer.split("o'er the king!") == [
        "o'er",
        " ",
        "the",
        " ",
        "king",
        "!",
    ]
    # ranked by count: " " 6, "king" 2, "the" 2, then "!" "," ";" "KING" "The" "o'er" (1 each)
    assert tok.pieces == ["<unk>", " ", "!", ",", "king", "the"]
    assert tok.decode(tok.encode("the king, o'er")) == "the king, <unk>"
    # Chinese has no spaces: a whole clause is one "word"
    assert tokenizers.WordTokenizer.split("今天的天气很好，阳光明媚。") == [
        "今天的天气很好",
        "，",
        "阳光明媚",
        "。",
    ]


# --------------------------------------------------------------------------- 4. byte-level BPE


def test_pretokenize_gpt2_pattern():
    assert tokenizers.pretokenize("Hello world's  end 123!?") == [
        "Hello",
        " world",
        "'s",
        " ",
        " end",
        " 123",
        "!?",
    ]
    assert tokenizers.pretokenize("") == []
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.pretokenize(None)


def test_get_pair_counts_and_merge():
    ids = [1, 2, 3, 1, 2]
    assert tokenizers.get_pair_counts(ids) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert tokenizers.get_pair_counts([7]) == {} and tokenizers.get_pair_counts([]) == {}
    acc = tokenizers.get_pair_counts([1, 2])
    assert tokenizers.get_pair_counts([1, 2], acc) == {(1, 2): 2}
    assert tokenizers.merge(ids, (1, 2), 9) == [9, 3, 9]
    assert tokenizers.merge([5, 5, 5], (5, 5), 9) == [9, 5]  # left to right, no overlap
    assert tokenizers.merge([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert tokenizers.merge([1, 3], (1, 2), 9) == [1, 3]
    assert tokenizers.merge([], (1, 2), 9) == []
    assert tokenizers.merge([3, 1, 2], (1, 2), 9) == [3, 9]


def test_train_bpe_small_example():
    # "aaab" x 2 and "ab" x 3: (a, b) occurs 5 times, (a, a) 4 times.
    chunks = {b"aaab": 2, b"ab": 3}
    a, b = ord("a"), ord("b")
    merges = tokenizers.train_bpe(chunks, 10)
    assert merges[0] == (a, b)
    assert merges == tokenizers.train_bpe_naive(chunks, 10)
    # after (a,b) -> 256 and (a,a) -> 257 the chunks are [257, 256] and [256]: one pair left
    assert merges == [(a, b), (a, a), (257, 256)]
    assert tokenizers.train_bpe(chunks, 0) == []
    assert tokenizers.train_bpe({}, 5) == [] and tokenizers.train_bpe_naive({}, 5) == []
    for fn in (tokenizers.train_bpe, tokenizers.train_bpe_naive):
        with pytest.raises(ValueError, match="num_merges must be >= 0"):
            fn(chunks, -1)
        with pytest.raises(TypeError, match="num_merges must be an integer, got float"):
            fn(chunks, 2.0)


@given(
    st.dictionaries(
        st.binary(min_size=1, max_size=8).map(lambda b: bytes(x % 4 + 97 for x in b)),
        st.integers(min_value=1, max_value=5),
        max_size=12,
    ),
    st.integers(min_value=0, max_value=20),
)
def test_incremental_training_equals_naive(chunks, num_merges):
    assert tokenizers.train_bpe(chunks, num_merges) == tokenizers.train_bpe_naive(
        chunks, num_merges
    )


def test_incremental_training_equals_naive_on_the_corpus():
    text = data.load_corpus("val", "small")[:20_000]
    chunks = tokenizers.chunk_counts(text)
    assert tokenizers.train_bpe(chunks, 40) == tokenizers.train_bpe_naive(chunks, 40)


def test_chunk_counts():
    assert tokenizers.chunk_counts("to be or not to be") == {
        b"to": 1,
        b" be": 2,
        b" or": 1,
        b" not": 1,
        b" to": 1,
    }
    assert tokenizers.chunk_counts("") == {}


@pytest.fixture(scope="module")
def bpe():
    return tokenizers.ByteBPETokenizer.train(data.load_corpus("val", "small"), 400)


def test_byte_bpe_basics(bpe):
    assert bpe.vocab_size == 400 and len(bpe.merges) == 144
    assert bpe.token_bytes[:256] == [bytes([b]) for b in range(256)]
    ids = bpe.encode("the king")
    assert len(ids) < len("the king") and bpe.decode(ids) == "the king"
    assert bpe.encode("") == [] and bpe.decode([]) == ""
    assert bpe.encode("你") == [228, 189, 160]  # unseen characters fall back to their bytes
    assert bpe.decode([228, 189]) == "\ufffd"  # half a character
    assert bpe.decode_bytes([228, 189]) == b"\xe4\xbd"


@settings(max_examples=500)
@given(st.text())
def test_byte_bpe_round_trips_any_string(bpe, s):
    ids = bpe.encode(s)
    assert bpe.decode(ids) == s
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert len(ids) <= len(s.encode("utf-8"))


def test_byte_bpe_trains_fewer_merges_when_pairs_run_out():
    tok = tokenizers.ByteBPETokenizer.train("ab", 300)
    assert tok.merges == [(97, 98)] and tok.vocab_size == 257
    assert tokenizers.ByteBPETokenizer.train("ab", 256).merges == []


def test_byte_bpe_errors(bpe, tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be >= 256 for byte-level"):
        tokenizers.ByteBPETokenizer.train("some text", 100)
    with pytest.raises(ValueError, match="vocab_size must be given"):
        tokenizers.ByteBPETokenizer.train("some text", None)
    with pytest.raises(ValueError, match="text must not be empty"):
        tokenizers.ByteBPETokenizer.train("", 300)
    for bad in (bpe.vocab_size, -1):
        with pytest.raises(ValueError, match="is not in this vocabulary of 400"):
            bpe.decode([bad])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an integer, got NoneType"):
        bpe.decode([None])
    with pytest.raises(TypeError, match="vocab_size must be an integer, got str"):
        tokenizers.ByteBPETokenizer.train("some text", "300")
    with pytest.raises(TypeError, match="text must be a string"):
        bpe.encode(b"bytes")
    with pytest.raises(ValueError, match=r"merges\[0\] must be two ids below 256"):
        tokenizers.ByteBPETokenizer([(97, 256)])
    with pytest.raises(ValueError, match=r"merges\[1\] must be two ids below 257"):
        tokenizers.ByteBPETokenizer([(97, 98), (1, 2, 3)])
    with pytest.raises(TypeError, match="pattern must be a regular expression string"):
        tokenizers.ByteBPETokenizer([], pattern=None)


def test_byte_bpe_save_and_load(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["type"] == "byte_bpe" and saved["pattern"] == tokenizers.GPT2_SPLIT_PATTERN
    assert saved["merges"][:2] == [list(m) for m in bpe.merges[:2]]
    again = tokenizers.ByteBPETokenizer.load(path)
    assert again.merges == bpe.merges
    text = "Now is the winter of our discontent 🙂"
    assert again.encode(text) == bpe.encode(text)
    with pytest.raises(ValueError, match="not a 'char' one"):
        tokenizers.CharTokenizer.load(path)


def test_bytes_per_token(bpe):
    class Encoding:  # what Hugging Face's Tokenizer.encode returns: an object with .ids
        def __init__(self, ids):
            self.ids = ids

    class Wrapped:
        def encode(self, s):
            return Encoding(bpe.encode(s))

    text = "To be, or not to be"
    expected = len(text) / len(bpe.encode(text))
    assert tokenizers.bytes_per_token(bpe, text) == pytest.approx(expected)
    assert tokenizers.bytes_per_token(Wrapped(), [text]) == pytest.approx(expected)
    assert tokenizers.bytes_per_token(bpe, "你好") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one token"):
        tokenizers.bytes_per_token(bpe, ["", ""])


# --------------------------------------------------------------------------- 4b. ties

# Three pairs occur once each in " a bc": (" ", "a"), (" ", "b") and ("b", "c"), a three-way tie.
TIE_TEXT = " a bc"


def test_ties_go_to_the_smallest_pair_of_byte_ids():
    chunks = tokenizers.chunk_counts(TIE_TEXT)
    assert chunks == {b" a": 1, b" bc": 1}
    first = tokenizers.train_bpe(chunks, 1)
    assert first == tokenizers.train_bpe_naive(chunks, 1) == [(32, 97)]  # space < "b"
    # (32, 97) < (32, 98) < (98, 99) as tuples; then " b" (257) is followed by "c"
    assert tokenizers.train_bpe(chunks, 3) == [(32, 97), (32, 98), (257, 99)]


def test_byte_rank_reorders_the_bytes_only_for_ties():
    chunks = tokenizers.chunk_counts(TIE_TEXT)
    rank = tokenizers.HF_BYTE_RANK
    assert sorted(rank) == list(range(256))
    assert rank[ord("a")] < rank[ord("b")] < rank[ord(" ")]  # the space is "Ġ", U+0120
    # with the space ranked after the letters, ("b", "c") wins the tie
    assert tokenizers.train_bpe(chunks, 1, byte_rank=rank) == [(98, 99)]
    # a merged id keeps its meaning: 256 is "bc" both times
    assert tokenizers.train_bpe(chunks, 3, byte_rank=rank) == [(98, 99), (32, 97), (32, 256)]
    # without ties the rank changes nothing
    text = data.load_corpus("val", "small")[:5_000]
    counts = tokenizers.chunk_counts(text)
    merges = tokenizers.train_bpe(counts, 30)
    identity = list(range(256))
    assert tokenizers.train_bpe(counts, 30, byte_rank=identity) == merges
    with pytest.raises(ValueError, match="byte_rank must hold each of 0..255 exactly once"):
        tokenizers.train_bpe(chunks, 1, byte_rank=[0] * 256)
    with pytest.raises(TypeError, match="byte_rank must be a sequence of 256 ints"):
        tokenizers.train_bpe(chunks, 1, byte_rank="abc")
    with pytest.raises(TypeError, match=r"byte_rank\[0\] must be an integer"):
        tokenizers.train_bpe(chunks, 1, byte_rank=[0.5] * 256)


# --------------------------------------------------------------------------- 4c. special tokens

EOT = "<|endoftext|>"


def documents() -> list[str]:
    """Fifty short documents: the validation text's paragraphs."""
    paragraphs = [p for p in data.load_corpus("val", "small").split("\n\n") if p.strip()]
    return paragraphs[:50]


@pytest.fixture(scope="module")
def bpe_special():
    """A BPE trained on documents joined by <|endoftext|>, with three special tokens."""
    text = EOT.join(documents())
    return tokenizers.ByteBPETokenizer.train(text, 400, special_tokens=[EOT, "<|end|>", "<|end"])


def test_special_tokens_get_one_id_each_after_the_merges(bpe_special):
    tok = bpe_special
    assert tok.vocab_size == 400 and len(tok.merges) == 397 - 256
    assert tok.special_ids == {EOT: 397, "<|end|>": 398, "<|end": 399}
    for t, i in tok.special_ids.items():
        assert tok.encode(t) == [i]
        assert tok.decode([i]) == t and tok.token_bytes[i] == t.encode()
    text = EOT.join(documents()[:5])
    ids = tok.encode(text)
    assert ids.count(397) == 4 and tok.decode(ids) == text


@pytest.mark.parametrize(
    "text",
    ["a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "don't<|endoftext|>'s"],
)
def test_special_tokens_are_never_split(bpe_special, text):
    ids = bpe_special.encode(text)
    assert ids.count(397) == text.count(EOT)
    assert bpe_special.decode(ids) == text
    # the text around a special token is encoded as if the special token were not there
    before, _, after = text.partition(EOT)
    assert ids[: ids.index(397)] == bpe_special.encode(before)
    assert ids[ids.index(397) + 1 :] == bpe_special.encode(after)
    # with allowed_special="none", the same characters are ordinary text: several tokens
    plain = bpe_special.encode(text, allowed_special="none")
    assert 397 not in plain and len(plain) > len(ids) and bpe_special.decode(plain) == text


def test_training_never_merges_across_special_tokens():
    docs = documents()
    text = EOT.join(docs)
    # the chunks of the joined text are the chunks of the documents, counted together
    together = Counter()
    for d in docs:
        together.update(tokenizers.chunk_counts(d))
    assert tokenizers.chunk_counts(text, special_tokens=[EOT]) == dict(together)
    # so training on the joined text learns the merges of the documents
    tok = tokenizers.ByteBPETokenizer.train(text, 300, special_tokens=[EOT])
    assert tok.merges == tokenizers.train_bpe(dict(together), 300 - 256 - 1)
    # and no learned token holds any part of the special token's text
    assert not any(b"<|" in t or b"|>" in t for t in tok.token_bytes[256:-1])
    # without the special token, its text is trained on like any other text
    plain = tokenizers.ByteBPETokenizer.train(text, 300)
    assert any(b"<|" in t or b"|>" in t for t in plain.token_bytes[256:])


def test_the_longest_special_token_wins(bpe_special):
    tok = bpe_special
    ids = tok.special_ids
    assert tok.encode("<|endoftext|>") == [ids[EOT]]  # not "<|end" + "oftext|>"
    assert tok.encode("<|end|>") == [ids["<|end|>"]]  # not "<|end" + "|>"
    assert tok.encode("<|end") == [ids["<|end"]]
    assert tok.encode("<|endoftext") == [ids["<|end"], *tok.encode("oftext")]
    # the order of the list does not matter: the longest match is taken, not the first listed
    reverse = tokenizers.ByteBPETokenizer(tok.merges, special_tokens=tok.special_tokens[::-1])
    text = "<|endoftext|><|end|><|end|>x<|end"
    pieces = [tok.decode([i]) for i in tok.encode(text)]
    assert [reverse.decode([i]) for i in reverse.encode(text)] == pieces
    assert pieces == [EOT, "<|end|>", "<|end|>", "x", "<|end"]
    # leftmost first, then longest: "ab" starts before "bcd", so "abcd" is "ab" + "cd"
    assert tokenizers.split_on_special("abcd", ["bcd", "ab"]) == [("ab", True), ("cd", False)]
    assert tokenizers.split_on_special("xbcd", ["bcd", "ab"]) == [("x", False), ("bcd", True)]


def test_split_on_special():
    assert tokenizers.split_on_special("", [EOT]) == []
    assert tokenizers.split_on_special("abc", []) == [("abc", False)]
    assert tokenizers.split_on_special(f"a{EOT}{EOT}b", [EOT]) == [
        ("a", False),
        (EOT, True),
        (EOT, True),
        ("b", False),
    ]
    assert tokenizers.special_token_regex([]) is None


SPECIAL_PARTS = [EOT, "<|end|>", "<|end", "<|", "|>", "end", "oftext", "'ll", "'", "l", "s"]
TEXT_PARTS = [" ", "  ", "\n", "\r\n", "\t", "a", "B", "1", "23", "!", "你好", "😀", "é"]
stream_texts = st.lists(st.sampled_from(SPECIAL_PARTS + TEXT_PARTS), max_size=40).map("".join)


@settings(max_examples=300)
@given(stream_texts, st.sampled_from(["all", "none", {"<|end"}, {EOT, "<|end|>"}]))
def test_round_trip_with_special_tokens(bpe_special, text, allowed):
    assert bpe_special.decode(bpe_special.encode(text, allowed_special=allowed)) == text


def test_allowed_special(bpe_special):
    tok = bpe_special
    ids = tok.special_ids
    assert tok.encode("<|endoftext|>", allowed_special={"<|end"}) == [
        ids["<|end"],
        *tok.encode("oftext|>", allowed_special="none"),
    ]
    assert tok.encode("x", allowed_special=set()) == tok.encode("x", allowed_special="none")
    with pytest.raises(ValueError, match="allowed_special must be 'all', 'none' or a set"):
        tok.encode("x", allowed_special="some")
    with pytest.raises(ValueError, match=r"allowed_special names '<\|im_end\|>', not among"):
        tok.encode("x", allowed_special={"<|im_end|>"})
    with pytest.raises(TypeError, match="allowed_special must be 'all', 'none' or a set"):
        tok.encode("x", allowed_special=1)


def test_special_token_errors():
    with pytest.raises(ValueError, match=r"vocab_size must be >= 258 for byte-level BPE \(256 "):
        tokenizers.ByteBPETokenizer.train("some text", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TypeError, match="special_tokens must be a list of strings"):
        tokenizers.ByteBPETokenizer.train("some text", 300, special_tokens=EOT)
    with pytest.raises(TypeError, match=r"special_tokens\[1\] must be a string, got bytes"):
        tokenizers.ByteBPETokenizer([], special_tokens=[EOT, b"<|x|>"])
    with pytest.raises(ValueError, match=r"special_tokens\[0\] is empty"):
        tokenizers.ByteBPETokenizer([], special_tokens=[""])
    with pytest.raises(ValueError, match="special_tokens must not repeat"):
        tokenizers.ByteBPETokenizer([], special_tokens=[EOT, EOT])
    # room for the special tokens only: no merges at all
    tok = tokenizers.ByteBPETokenizer.train("some text", 257, special_tokens=[EOT])
    assert tok.merges == [] and tok.vocab_size == 257 and tok.encode(EOT) == [256]


def test_special_tokens_save_and_load(bpe_special, tmp_path):
    path = tmp_path / "bpe.json"
    bpe_special.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["special_tokens"] == [EOT, "<|end|>", "<|end"]
    again = tokenizers.ByteBPETokenizer.load(path)
    assert again.special_ids == bpe_special.special_ids and again.merges == bpe_special.merges
    text = f"Now is the winter{EOT}of our <|end|> discontent<|end"
    assert again.encode(text) == bpe_special.encode(text)
    # a file saved before special tokens existed loads with none
    del saved["special_tokens"]
    path.write_text(json.dumps(saved), encoding="utf-8")
    old = tokenizers.ByteBPETokenizer.load(path)
    assert old.special_tokens == () and old.vocab_size == 256 + len(bpe_special.merges)


# --------------------------------------------------------------------------- 4d. streaming


@settings(max_examples=300)
@given(
    stream_texts,
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    st.sampled_from(["all", "none", {"<|end"}]),
)
def test_encode_stream_equals_whole_text_encoding(bpe_special, text, cuts, allowed):
    cuts = sorted(c % (len(text) + 1) for c in cuts)
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert "".join(pieces) == text
    expected = bpe_special.encode(text, allowed_special=allowed)
    assert list(bpe_special.encode_stream(pieces, allowed_special=allowed)) == expected
    # one character at a time: every position is a piece boundary
    assert list(bpe_special.encode_stream(list(text), allowed_special=allowed)) == expected


def test_encode_stream_holds_what_may_still_change(bpe_special):
    tok = bpe_special
    # a contraction, a word and a special token, each cut in two
    for text in ["don't", "I'll", " there", "a  b", f"x{EOT}y", "<|end|>", "<|endoftext"]:
        for k in range(len(text) + 1):
            assert list(tok.encode_stream([text[:k], text[k:]])) == tok.encode(text), (text, k)
    # a special token whose end could start another: "<a b c>" is final, though its ">"
    # might be the start of ">z", because a match never starts inside an earlier one
    overlapping = tokenizers.ByteBPETokenizer(tok.merges, special_tokens=["<a b c>", ">z"])
    for text in ["x y <a b c>z", "x y <a b c>>z", "x y <a b c"]:
        for k in range(len(text) + 1):
            expected = overlapping.encode(text)
            assert list(overlapping.encode_stream([text[:k], text[k:]])) == expected, (text, k)
    assert list(tok.encode_stream([])) == [] and list(tok.encode_stream(["", ""])) == []
    with pytest.raises(TypeError, match="pieces must be an iterable of strings"):
        tok.encode_stream("one string")
    with pytest.raises(TypeError, match=r"pieces\[1\] must be a string, got bytes"):
        list(tok.encode_stream(["a", b"b"]))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 4096])
def test_encode_file_equals_whole_text_encoding(bpe_special, tmp_path, chunk_size):
    # multi-byte characters (2, 3 and 4 bytes) and special tokens across every read boundary
    text = f"café 你好 😀 don't\r\n{EOT}  naïve<|end|>tail 'll <|end\n" * 3
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode("utf-8"))
    assert list(bpe_special.encode_file(path, chunk_size)) == bpe_special.encode(text)
    plain = bpe_special.encode(text, allowed_special="none")
    assert list(bpe_special.encode_file(path, chunk_size, allowed_special="none")) == plain


def test_encode_file_errors(bpe_special, tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at"):
        bpe_special.encode_file(tmp_path / "missing.txt")
    path = tmp_path / "doc.txt"
    path.write_bytes(b"ok")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        bpe_special.encode_file(path, 0)
    path.write_bytes("你好".encode()[:-1])  # the last character is cut
    with pytest.raises(UnicodeDecodeError):
        list(bpe_special.encode_file(path, 2))
    path.write_bytes(b"ok\xff")
    with pytest.raises(UnicodeDecodeError):
        list(bpe_special.encode_file(path))


def test_encode_file_runs_in_bounded_memory(tmp_path):
    """Peak memory while streaming a 1 MB file stays under half its size; encoding the whole
    text at once needs about ten times the file (the text, its chunks and the id list)."""
    text = data.load_corpus("val", "small")[:20_000]
    trained = tokenizers.ByteBPETokenizer.train(text, 300, special_tokens=[EOT])
    document = text + EOT + "你好 😀\r\n"
    path = tmp_path / "big.txt"
    path.write_bytes((document * 50).encode("utf-8"))
    size = path.stat().st_size
    assert size > 1_000_000
    expected = trained.encode(document) * 50  # each document ends with a special token
    # a fresh tokenizer, so that filling the chunk cache counts too
    tok = tokenizers.ByteBPETokenizer(trained.merges, special_tokens=[EOT])
    tracemalloc.start()
    try:
        # zip(strict=True) also checks that the stream ends exactly where the whole text does
        for got, want in zip(tok.encode_file(path, 4096), expected, strict=True):
            assert got == want
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = size // 2
    assert peak < limit, f"peak {peak:,} bytes for a file of {size:,}"


# --------------------------------------------------------------------------- 5. WordPiece

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "un",
    "##aff",
    "##able",
    "a",
    "##a",
    "cafe",
    "!",
    "数",
    "σ",
]


def test_wordpiece_one_word():
    vocab = set(VOCAB)
    assert tokenizers.wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert tokenizers.wordpiece("aaa", vocab) == ["a", "##a", "##a"]
    assert tokenizers.wordpiece("unaffablex", vocab) == ["[UNK]"]  # the whole word
    assert tokenizers.wordpiece("a" * 100, vocab) == ["a"] + ["##a"] * 99
    assert tokenizers.wordpiece("a" * 101, vocab) == ["[UNK]"]
    assert tokenizers.wordpiece("a" * 5, vocab, max_chars=4) == ["[UNK]"]
    assert tokenizers.wordpiece("", vocab) == []
    with pytest.raises(TypeError, match="word must be a string"):
        tokenizers.wordpiece(None, vocab)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_chars must be >= 1"):
            tokenizers.wordpiece("a", vocab, max_chars=bad)
    for bad in (1.5, None):
        with pytest.raises(TypeError, match="max_chars must be an integer, got"):
            tokenizers.wordpiece("a", vocab, max_chars=bad)


def test_bert_normalize_and_pre_tokenize():
    assert tokenizers.bert_normalize("Café NAÏVE") == "cafe naive"
    assert tokenizers.bert_normalize("Café", lowercase=False) == "Café"
    assert tokenizers.bert_normalize("ΟΔΟΣ") == "οδοσ"  # one character at a time: no final ς
    assert tokenizers.bert_normalize("a\u200bb\x00c\ufffd\x07d\te\u3000f") == "abcd e f"
    assert tokenizers.bert_normalize("数据") == " 数  据 "
    assert tokenizers.is_cjk("数") and not tokenizers.is_cjk("a") and not tokenizers.is_cjk("か")
    assert tokenizers.bert_pre_tokenize("hello, world!! $5") == [
        "hello",
        ",",
        "world",
        "!",
        "!",
        "$",
        "5",
    ]
    assert tokenizers.bert_pre_tokenize("   ") == []
    assert tokenizers.bert_basic_tokenize("Don't 数据!") == ["don", "'", "t", "数", "据", "!"]
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.bert_normalize(None)
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.bert_pre_tokenize(None)


def test_wordpiece_tokenizer():
    tok = tokenizers.WordPieceTokenizer(VOCAB)
    assert tok.vocab_size == len(VOCAB)
    assert tok.tokenize("Unaffable café!") == ["un", "##aff", "##able", "cafe", "!"]
    assert tok.tokenize("数据 [MASK]a [mask]") == [
        "数",
        "[UNK]",
        "[MASK]",
        "a",
        "[UNK]",
        "[UNK]",
        "[UNK]",
    ]
    assert tok.encode("a") == [2, 8, 3]
    assert tok.encode("a", add_special_tokens=False) == [8]
    assert tok.convert_ids_to_tokens([2, 8, 3]) == ["[CLS]", "a", "[SEP]"]
    with pytest.raises(ValueError, match="id 99 is not in this vocabulary"):
        tok.convert_ids_to_tokens([99])
    with pytest.raises(ValueError, match=r"vocab lacks the special tokens \['\[MASK\]'\]"):
        tokenizers.WordPieceTokenizer(VOCAB[:4])


def test_encode_batch_pads_and_truncates():
    tok = tokenizers.WordPieceTokenizer(VOCAB)
    out = tok.encode_batch(["a", "a a a", ""])
    assert out["input_ids"] == [[2, 8, 3, 0, 0], [2, 8, 8, 8, 3], [2, 3, 0, 0, 0]]
    assert out["attention_mask"] == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    cut = tok.encode_batch(["a a a a"], max_length=4)
    assert cut["input_ids"] == [[2, 8, 8, 3]]
    assert tok.encode_batch(["a a a a"], max_length=4, truncation=False)["input_ids"] == [
        [2, 8, 8, 8, 8, 3]
    ]
    ragged = tok.encode_batch(["a", "a a"], padding=False)
    assert ragged["input_ids"] == [[2, 8, 3], [2, 8, 8, 3]]
    assert ragged["attention_mask"] == [[1, 1, 1], [1, 1, 1, 1]]
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        tok.encode_batch("a")
    with pytest.raises(ValueError, match="texts must hold at least one text"):
        tok.encode_batch([])
    with pytest.raises(ValueError, match=r"max_length must be >= 2"):
        tok.encode_batch(["a"], max_length=1)
    with pytest.raises(TypeError, match=r"max_length must be an integer, got str"):
        tok.encode_batch(["a"], max_length="8")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string"):
        tok.encode_batch(["a", None])


# ------------------------------------------------------------------- ids of any integer type


def _decoders(bpe):
    """name -> (decode function, ids to decode, expected result) for every tokenizer."""
    char = tokenizers.CharTokenizer.train("hello")
    word = tokenizers.WordTokenizer.train("the king and the queen")
    wp = tokenizers.WordPieceTokenizer(VOCAB)
    return {
        "char": (char.decode, char.encode("hello"), "hello"),
        "word": (word.decode, word.encode("the king"), word.decode(word.encode("the king"))),
        "bpe": (bpe.decode, bpe.encode("the king"), "the king"),
        "bpe bytes": (bpe.decode_bytes, bpe.encode("the king"), b"the king"),
        "wordpiece": (wp.convert_ids_to_tokens, [2, 8, 3], ["[CLS]", "a", "[SEP]"]),
    }


@pytest.mark.parametrize("name", ["char", "word", "bpe", "bpe bytes", "wordpiece"])
def test_decode_takes_numpy_and_tensor_integers(bpe, name):
    decode, ids, expected = _decoders(bpe)[name]
    assert decode(ids) == expected
    assert decode(np.array(ids, dtype=np.int64)) == expected  # NumPy integers
    assert decode([np.int32(i) for i in ids]) == expected
    assert decode(torch.tensor(ids)) == expected  # a 1-d tensor: its items are 0-d tensors
    assert decode([torch.tensor(i) for i in ids]) == expected
    assert decode(torch.tensor(ids, dtype=torch.int32)) == expected


@pytest.mark.parametrize("name", ["char", "word", "bpe", "bpe bytes", "wordpiece"])
def test_decode_refuses_non_integer_ids_by_type(bpe, name):
    decode, ids, _ = _decoders(bpe)[name]
    # bool is refused: True is a mistake (a mask, a comparison), not token 1
    for bad, shown in [
        (1.0, "float 1.0"),
        ("a", "str 'a'"),
        (None, "NoneType None"),
        (True, "bool True"),
        (np.float64(2.0), "float64"),
        (torch.tensor(2.0), "Tensor"),
        (torch.tensor(True), "bool"),
    ]:
        with pytest.raises(TypeError, match=rf"ids\[1\] must be an integer, got .*{shown}"):
            decode([ids[0], bad])
    with pytest.raises(ValueError, match="ids must be one-dimensional, got shape \\(1, 2\\)"):
        decode(torch.tensor([ids[:2]]))
    with pytest.raises(ValueError, match="is not in this vocabulary"):
        decode([np.int64(10_000)])


# --------------------------------------------------------------------------- 6. sequences


def test_next_token_dataset():
    ds = tokenizers.NextTokenDataset(list(range(10)), block_size=4)
    assert len(ds) == 6
    x, y = ds[0]
    assert x.tolist() == [0, 1, 2, 3] and y.tolist() == [1, 2, 3, 4]
    assert x.dtype == torch.long and x.shape == (4,)
    x, y = ds[-1]
    assert x.tolist() == [5, 6, 7, 8] and y.tolist() == [6, 7, 8, 9]
    for t in range(len(ds)):
        x, y = ds[t]
        assert torch.equal(x[1:], y[:-1])
    with pytest.raises(IndexError, match="window 6 is out of range for 6 windows"):
        ds[6]
    assert len(tokenizers.NextTokenDataset(torch.arange(5), block_size=4)) == 1


def test_next_token_dataset_errors():
    for bad in (0, -2):
        with pytest.raises(ValueError, match="block_size must be >= 1"):
            tokenizers.NextTokenDataset([1, 2, 3], bad)
    for bad in (1.5, True, None):
        with pytest.raises(TypeError, match="block_size must be an integer, got"):
            tokenizers.NextTokenDataset([1, 2, 3], bad)
    with pytest.raises(ValueError, match="block_size 3 needs at least 4 tokens"):
        tokenizers.NextTokenDataset([1, 2, 3], 3)
    with pytest.raises(TypeError, match="ids must hold integer token ids"):
        tokenizers.NextTokenDataset(torch.rand(10), 3)
    with pytest.raises(ValueError, match="ids must be one-dimensional"):
        tokenizers.NextTokenDataset(torch.zeros(2, 5, dtype=torch.long), 3)


def test_pad_batch():
    ids, mask = tokenizers.pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert ids.dtype == mask.dtype == torch.long
    ids, mask = tokenizers.pad_batch([torch.tensor([5, 6, 7]), [8]], pad_id=-1, side="left")
    assert ids.tolist() == [[5, 6, 7], [-1, -1, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = tokenizers.pad_batch([[4]])  # batch of one
    assert ids.tolist() == [[4]] and mask.tolist() == [[1]]
    ids, mask = tokenizers.pad_batch([[], [1]])
    assert ids.tolist() == [[0], [1]] and mask.tolist() == [[0], [1]]
    with pytest.raises(ValueError, match="seqs must hold at least one sequence"):
        tokenizers.pad_batch([])
    with pytest.raises(ValueError, match="side must be 'right' or 'left'"):
        tokenizers.pad_batch([[1]], side="middle")
    with pytest.raises(TypeError, match="pad_id must be an integer"):
        tokenizers.pad_batch([[1]], pad_id=0.5)
    with pytest.raises(TypeError, match=r"seqs\[1\] must hold integer token ids"):
        tokenizers.pad_batch([[1], [0.5]])


# --------------------------------------------------------------------------- notebook exercises
# The answer key (course_lib.exercises.nb01) is what each check cell of notebook 01 calls: a right
# answer passes and each named mistake is recognised, tried here without running the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


def test_exercise_forward_max_match_wrong_answers_are_named():
    signature = "def forward_max_match(text, vocab, max_len):"
    right, shortest, dropped, short_window = (
        learner(signature, body)
        for body in (
            """
words, i = [], 0
while i < len(text):
    for j in range(min(len(text), i + max_len), i, -1):
        if j == i + 1 or text[i:j] in vocab:
            words.append(text[i:j])
            i = j
            break
return words
""",
            """
words, i = [], 0
while i < len(text):
    j = i + 1
    for k in range(i + 1, min(len(text), i + max_len) + 1):
        if text[i:k] in vocab:
            j = k
            break
    words.append(text[i:j])
    i = j
return words
""",
            """
words, i = [], 0
while i < len(text):
    for j in range(min(len(text), i + max_len), i, -1):
        if text[i:j] in vocab:
            words.append(text[i:j])
            i = j
            break
    else:
        i += 1
return words
""",
            """
words, i = [], 0
while i < len(text):
    for j in range(min(len(text), i + max_len - 1), i, -1):
        if j == i + 1 or text[i:j] in vocab:
            words.append(text[i:j])
            i = j
            break
return words
""",
        )
    )
    ok, s, d, w = _verdicts(nb01.forward_max_match, right, shortest, dropped, short_window)
    assert ok == "forward_max_match: all 7 cases pass. Well done!"
    assert "case 'the classic ambiguity' does not" in s
    assert "hint: this looks like the shortest match" in s
    assert "hint: this looks like dropping characters that start no word" in d
    assert "case 'words inside longer words' does not" in w
    assert "hint: this looks like a window one character too short" in w


def test_exercise_merge_wrong_answers_are_named():
    signature = "def merge(ids, pair, new_id):"
    right, one_step, first_only = (
        learner(signature, body)
        for body in (
            """
out, i = [], 0
while i < len(ids):
    if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
        out.append(new_id)
        i += 2
    else:
        out.append(ids[i])
        i += 1
return out
""",
            """
out, i = [], 0
while i < len(ids):
    if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
        out.append(new_id)
    else:
        out.append(ids[i])
    i += 1
return out
""",
            """
for i in range(len(ids) - 1):
    if (ids[i], ids[i + 1]) == pair:
        return ids[:i] + [new_id] + ids[i + 2 :]
return list(ids)
""",
        )
    )
    ok, step, first = _verdicts(nb01.merge, right, one_step, first_only)
    assert ok == "merge: all 7 cases pass. Well done!"
    assert "hint: this looks like moving one step after a match" in step
    assert "hint: this looks like merging only the first occurrence" in first


# The BPE training loop, as learners write it: the right one, and one bug each.


def _bpe_loop(
    chunks, num_merges, *, pick="smallest", weighted=True, merge="left", recount=True, stop=True
):
    words = {chunk: list(chunk) for chunk in chunks}
    merges, counts = [], {}
    for _ in range(num_merges):
        if recount or not merges:
            counts = {}
            for chunk, ids in words.items():
                for a, b in zip(ids, ids[1:], strict=False):
                    counts[a, b] = counts.get((a, b), 0) + (chunks[chunk] if weighted else 1)
        if stop and not counts:
            break
        if pick == "smallest":
            best = min(counts, key=lambda p: (-counts[p], p))
        elif pick == "largest":  # max over (count, pair)
            best = max(counts, key=lambda p: (counts[p], p))
        else:  # max(counts, key=counts.get): the tied pair it met first
            best = max(counts, key=counts.get)
        new_id = 256 + len(merges)
        for chunk, ids in words.items():
            if merge == "left":
                words[chunk] = tokenizers.merge(ids, best, new_id)
            elif merge == "one step":  # emits new_id at each match without skipping its partner
                words[chunk] = [
                    new_id if tuple(ids[i : i + 2]) == best else ids[i] for i in range(len(ids))
                ]
            else:  # in place, from the right, so that deleting keeps the indices valid
                for i in range(len(ids) - 2, -1, -1):
                    if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                        ids[i : i + 2] = [new_id]
        merges.append(best)
        counts.pop(best)
    return merges


def _loop(name, **bug):
    def learn_merges(chunks, num_merges):
        return _bpe_loop(chunks, num_merges, **bug)

    learn_merges.__name__ = name
    return learn_merges


def test_exercise_learn_merges_equals_the_library_and_wrong_answers_are_named():
    right = _loop("learn_merges")
    # the equality target: ByteBPETokenizer.train's merges on a small text, and train_bpe's
    text = nb01.SMALL_TEXT
    assert (
        right(tokenizers.chunk_counts(text), 40)
        == tokenizers.ByteBPETokenizer.train(text, 256 + 40).merges
    )
    ok, largest, first, unweighted, one_step, from_right, stale = _verdicts(
        nb01.learn_merges,
        right,
        _loop("largest", pick="largest"),
        _loop("first", pick="first"),
        _loop("unweighted", weighted=False),
        _loop("one_step", merge="one step"),
        _loop("from_right", merge="right"),
        _loop("stale", recount=False),
    )
    assert ok == "learn_merges: all 8 cases pass. Well done!"
    assert "hint: this looks like ties going to the largest pair" in largest
    assert "hint: this looks like ties going to the pair counted first" in first
    assert "hint: this looks like pairs counted without the chunk frequencies" in unweighted
    assert "hint: this looks like a merge that moves one step after a match" in one_step
    assert "case 'overlapping pairs: aaa and aaaa' does not" in from_right
    assert "hint: this looks like overlapping pairs merged from the right" in from_right
    assert "hint: this looks like pair counts not recounted after a merge" in stale


def test_exercise_learn_merges_tie_cases_catch_each_tie_rule():
    # the tie rule alone decides these cases: each wrong rule fails on each of them
    chunks = {b"ba": 1, b"dc": 1, b"ab": 1}
    expected = tokenizers.train_bpe(chunks, 3)
    assert expected == tokenizers.train_bpe_naive(chunks, 3) == [(97, 98), (98, 97), (100, 99)]
    assert _loop("largest", pick="largest")(chunks, 3)[0] == (100, 99)
    assert _loop("first", pick="first")(chunks, 3)[0] == (98, 97)


def test_exercise_learn_merges_stub_and_errors_get_verdicts():
    def stub(chunks, num_merges):
        raise NotImplementedError("Exercise: replace this line with your code")

    # without the early stop, min() of no counts raises once the chunks run out of pairs
    not_yet, crash = _verdicts(nb01.learn_merges, stub, _loop("no_stop", stop=False))
    assert not_yet.startswith("stub: not yet.")
    assert "case 'more merges than pairs' does not" in crash and "raised ValueError" in crash


def test_exercise_wordpiece_wrong_answers_are_named():
    greedy = """
if len(word) > max_chars:
    return ["[UNK]"]
pieces, start = [], 0
while start < len(word):
    for end in {ends}:
        piece = {piece}
        if piece in vocab:
            break
    else:
        return {unmatched}
    pieces.append(piece)
    start = end
return pieces
"""
    prefixed = 'word[start:end] if start == 0 else "##" + word[start:end]'
    longest, shortest = "range(len(word), start, -1)", "range(start + 1, len(word) + 1)"
    right, no_prefix, short, partial = (
        learner("def wordpiece(word, vocab, max_chars=100):", greedy.format(**parts))
        for parts in (
            dict(ends=longest, piece=prefixed, unmatched='["[UNK]"]'),
            dict(ends=longest, piece="word[start:end]", unmatched='["[UNK]"]'),
            dict(ends=shortest, piece=prefixed, unmatched='["[UNK]"]'),
            dict(ends=longest, piece=prefixed, unmatched='pieces + ["[UNK]"]'),
        )
    )
    ok, n, s, p = _verdicts(nb01.wordpiece, right, no_prefix, short, partial)
    assert ok == "wordpiece: all 8 cases pass. Well done!"
    assert "hint: this looks like continuation pieces without '##'" in n
    assert "hint: this looks like the shortest match" in s
    assert "case 'a character not in the vocabulary' does not" in p
    assert "hint: this looks like [UNK] for the unmatched rest only" in p


def test_exercise_next_token_windows_wrong_answers_are_named():
    signature = "def next_token_windows(ids, block_size):"
    right, unshifted, short, apart = (
        learner(signature, body)
        for body in (
            """
windows = ids.unfold(0, block_size + 1, 1)
return windows[:, :-1], windows[:, 1:]
""",
            """
windows = ids.unfold(0, block_size, 1)[: len(ids) - block_size]
return windows, windows
""",
            """
n = len(ids) - block_size - 1
inputs = torch.stack([ids[t : t + block_size] for t in range(n)])
targets = torch.stack([ids[t + 1 : t + block_size + 1] for t in range(n)])
return inputs, targets
""",
            """
starts = range(0, len(ids) - block_size, block_size)
inputs = torch.stack([ids[t : t + block_size] for t in starts])
targets = torch.stack([ids[t + 1 : t + block_size + 1] for t in starts])
return inputs, targets
""",
        )
    )
    ok, u, s, a = _verdicts(nb01.next_token_windows, right, unshifted, short, apart)
    assert ok == "next_token_windows: all 5 cases pass. Well done!"
    assert "hint: this looks like targets equal to the inputs" in u
    assert "hint: this looks like one window too few" in s
    assert "hint: this looks like non-overlapping windows" in a
