"""course_lib.wordpiece: every public function, its properties, and its errors.

The comparison with all-MiniLM-L6-v2's own tokenizer is in test_tokenizer_reference.py.
"""

import pytest
from decode_checks import assert_decode_refuses_non_integers, assert_decode_takes_integer_types
from exercise_helpers import learner

from course_lib import wordpiece
from course_lib.exercises import nb01

# --------------------------------------------------------------------------- WordPiece

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
    assert wordpiece.wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece.wordpiece("aaa", vocab) == ["a", "##a", "##a"]
    assert wordpiece.wordpiece("unaffablex", vocab) == ["[UNK]"]  # the whole word
    assert wordpiece.wordpiece("a" * 100, vocab) == ["a"] + ["##a"] * 99
    assert wordpiece.wordpiece("a" * 101, vocab) == ["[UNK]"]
    assert wordpiece.wordpiece("a" * 5, vocab, max_chars=4) == ["[UNK]"]
    assert wordpiece.wordpiece("", vocab) == []
    with pytest.raises(TypeError, match="word must be a string"):
        wordpiece.wordpiece(None, vocab)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_chars must be >= 1"):
            wordpiece.wordpiece("a", vocab, max_chars=bad)
    for bad in (1.5, None):
        with pytest.raises(TypeError, match="max_chars must be an integer, got"):
            wordpiece.wordpiece("a", vocab, max_chars=bad)


def test_bert_normalize_and_pre_tokenize():
    assert wordpiece.bert_normalize("Café NAÏVE") == "cafe naive"
    assert wordpiece.bert_normalize("Café", lowercase=False) == "Café"
    assert wordpiece.bert_normalize("ΟΔΟΣ") == "οδοσ"  # one character at a time: no final ς
    assert wordpiece.bert_normalize("a\u200bb\x00c\ufffd\x07d\te\u3000f") == "abcd e f"
    assert wordpiece.bert_normalize("数据") == " 数  据 "
    assert wordpiece.is_cjk("数") and not wordpiece.is_cjk("a") and not wordpiece.is_cjk("か")
    assert wordpiece.bert_pre_tokenize("hello, world!! $5") == [
        "hello",
        ",",
        "world",
        "!",
        "!",
        "$",
        "5",
    ]
    assert wordpiece.bert_pre_tokenize("   ") == []
    assert wordpiece.bert_basic_tokenize("Don't 数据!") == ["don", "'", "t", "数", "据", "!"]
    with pytest.raises(TypeError, match="text must be a string"):
        wordpiece.bert_normalize(None)
    with pytest.raises(TypeError, match="text must be a string"):
        wordpiece.bert_pre_tokenize(None)


def test_wordpiece_tokenizer():
    tok = wordpiece.WordPieceTokenizer(VOCAB)
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
        wordpiece.WordPieceTokenizer(VOCAB[:4])


def test_encode_batch_pads_and_truncates():
    tok = wordpiece.WordPieceTokenizer(VOCAB)
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


def _decoders():
    """name -> (decode function, ids to decode, expected result)."""
    wp = wordpiece.WordPieceTokenizer(VOCAB)
    return {"wordpiece": (wp.convert_ids_to_tokens, [2, 8, 3], ["[CLS]", "a", "[SEP]"])}


@pytest.mark.parametrize("name", ["wordpiece"])
def test_decode_takes_numpy_and_tensor_integers(name):
    decode, ids, expected = _decoders()[name]
    assert_decode_takes_integer_types(decode, ids, expected)


@pytest.mark.parametrize("name", ["wordpiece"])
def test_decode_refuses_non_integer_ids_by_type(name):
    decode, ids, _ = _decoders()[name]
    assert_decode_refuses_non_integers(decode, ids)


# --------------------------------------------------------------------------- notebook exercises
# The answer key (course_lib.exercises.nb01) is what each check cell of notebook 01 calls: a right
# answer passes and each named mistake is recognised, tried here without running the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


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
