"""course_lib.tokenizers: every public function, its properties, and its errors.

The byte-level BPE and WordPiece tokenizers have their own test files (test_bpe.py,
test_wordpiece.py); the comparisons with the reference implementations (Hugging Face
`tokenizers`, the MiniLM tokenizer) are in test_tokenizer_reference.py.
"""

import json
import subprocess
import sys

import pytest
import torch
from decode_checks import assert_decode_refuses_non_integers, assert_decode_takes_integer_types
from exercise_helpers import learner
from hypothesis import given
from hypothesis import strategies as st

from course_lib import tokenizers
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


def test_json_helpers_write_atomically_and_check_the_kind(tmp_path):
    path = tmp_path / "tok.json"
    tokenizers.write_json(path, {"type": "char", "pieces": ["<unk>", "é"]})
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # the temporary file is gone
    assert "é" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    assert tokenizers.read_json(path, "char")["pieces"] == ["<unk>", "é"]
    with pytest.raises(ValueError, match="holds a 'char' tokenizer, not a 'word' one"):
        tokenizers.read_json(path, "word")
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="holds a 'list' tokenizer"):
        tokenizers.read_json(path, "char")


def test_bytes_per_token():
    class Encoding:  # what Hugging Face's Tokenizer.encode returns: an object with .ids
        def __init__(self, ids):
            self.ids = ids

    text = "To be, or not to be"
    words = tokenizers.WordTokenizer.train(text)

    class Wrapped:
        def encode(self, s):
            return Encoding(words.encode(s))

    expected = len(text) / len(words.encode(text))
    assert tokenizers.bytes_per_token(words, text) == pytest.approx(expected)
    assert tokenizers.bytes_per_token(Wrapped(), [text]) == pytest.approx(expected)
    chars = tokenizers.CharTokenizer.train("你好")
    assert tokenizers.bytes_per_token(chars, "你好") == pytest.approx(3.0)  # UTF-8 bytes
    with pytest.raises(ValueError, match="at least one token"):
        tokenizers.bytes_per_token(words, ["", ""])


# ------------------------------------------------------------------- ids of any integer type


def _decoders():
    """name -> (decode function, ids to decode, expected result) for each tokenizer here."""
    char = tokenizers.CharTokenizer.train("hello")
    word = tokenizers.WordTokenizer.train("the king and the queen")
    return {
        "char": (char.decode, char.encode("hello"), "hello"),
        "word": (word.decode, word.encode("the king"), word.decode(word.encode("the king"))),
    }


@pytest.mark.parametrize("name", ["char", "word"])
def test_decode_takes_numpy_and_tensor_integers(name):
    decode, ids, expected = _decoders()[name]
    assert_decode_takes_integer_types(decode, ids, expected)


@pytest.mark.parametrize("name", ["char", "word"])
def test_decode_refuses_non_integer_ids_by_type(name):
    decode, ids, _ = _decoders()[name]
    assert_decode_refuses_non_integers(decode, ids)


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
