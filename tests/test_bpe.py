"""course_lib.bpe: every public function, its properties, and its errors.

The comparisons with Hugging Face `tokenizers` (vocabulary, tokens, merge order, special
tokens) are in test_tokenizer_reference.py.
"""

import json
import tracemalloc
from collections import Counter

import pytest
from decode_checks import assert_decode_refuses_non_integers, assert_decode_takes_integer_types
from exercise_helpers import learner
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import bpe, data, tokenizers
from course_lib.exercises import nb01

# --------------------------------------------------------------------------- byte-level BPE


def test_pretokenize_gpt2_pattern():
    assert bpe.pretokenize("Hello world's  end 123!?") == [
        "Hello",
        " world",
        "'s",
        " ",
        " end",
        " 123",
        "!?",
    ]
    assert bpe.pretokenize("") == []
    with pytest.raises(TypeError, match="text must be a string"):
        bpe.pretokenize(None)


def test_get_pair_counts_and_merge():
    ids = [1, 2, 3, 1, 2]
    assert bpe.get_pair_counts(ids) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert bpe.get_pair_counts([7]) == {} and bpe.get_pair_counts([]) == {}
    acc = bpe.get_pair_counts([1, 2])
    assert bpe.get_pair_counts([1, 2], acc) == {(1, 2): 2}
    assert bpe.merge(ids, (1, 2), 9) == [9, 3, 9]
    assert bpe.merge([5, 5, 5], (5, 5), 9) == [9, 5]  # left to right, no overlap
    assert bpe.merge([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert bpe.merge([1, 3], (1, 2), 9) == [1, 3]
    assert bpe.merge([], (1, 2), 9) == []
    assert bpe.merge([3, 1, 2], (1, 2), 9) == [3, 9]


def test_train_bpe_small_example():
    # "aaab" x 2 and "ab" x 3: (a, b) occurs 5 times, (a, a) 4 times.
    chunks = {b"aaab": 2, b"ab": 3}
    a, b = ord("a"), ord("b")
    merges = bpe.train_bpe(chunks, 10)
    assert merges[0] == (a, b)
    assert merges == bpe.train_bpe_naive(chunks, 10)
    # after (a,b) -> 256 and (a,a) -> 257 the chunks are [257, 256] and [256]: one pair left
    assert merges == [(a, b), (a, a), (257, 256)]
    assert bpe.train_bpe(chunks, 0) == []
    assert bpe.train_bpe({}, 5) == [] and bpe.train_bpe_naive({}, 5) == []
    for fn in (bpe.train_bpe, bpe.train_bpe_naive):
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
    assert bpe.train_bpe(chunks, num_merges) == bpe.train_bpe_naive(chunks, num_merges)


def test_incremental_training_equals_naive_on_the_corpus():
    text = data.load_corpus("val", "small")[:20_000]
    chunks = bpe.chunk_counts(text)
    assert bpe.train_bpe(chunks, 40) == bpe.train_bpe_naive(chunks, 40)


def test_chunk_counts():
    assert bpe.chunk_counts("to be or not to be") == {
        b"to": 1,
        b" be": 2,
        b" or": 1,
        b" not": 1,
        b" to": 1,
    }
    assert bpe.chunk_counts("") == {}


@pytest.fixture(scope="module")
def small_bpe():
    return bpe.ByteBPETokenizer.train(data.load_corpus("val", "small"), 400)


def test_byte_bpe_basics(small_bpe):
    assert small_bpe.vocab_size == 400 and len(small_bpe.merges) == 144
    assert small_bpe.token_bytes[:256] == [bytes([b]) for b in range(256)]
    ids = small_bpe.encode("the king")
    assert len(ids) < len("the king") and small_bpe.decode(ids) == "the king"
    assert small_bpe.encode("") == [] and small_bpe.decode([]) == ""
    assert small_bpe.encode("你") == [228, 189, 160]  # unseen characters fall back to their bytes
    assert small_bpe.decode([228, 189]) == "\ufffd"  # half a character
    assert small_bpe.decode_bytes([228, 189]) == b"\xe4\xbd"


@settings(max_examples=500)
@given(st.text())
def test_byte_bpe_round_trips_any_string(small_bpe, s):
    ids = small_bpe.encode(s)
    assert small_bpe.decode(ids) == s
    assert all(0 <= i < small_bpe.vocab_size for i in ids)
    assert len(ids) <= len(s.encode("utf-8"))


def test_byte_bpe_trains_fewer_merges_when_pairs_run_out():
    tok = bpe.ByteBPETokenizer.train("ab", 300)
    assert tok.merges == [(97, 98)] and tok.vocab_size == 257
    assert bpe.ByteBPETokenizer.train("ab", 256).merges == []


def test_byte_bpe_errors(small_bpe, tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be >= 256 for byte-level"):
        bpe.ByteBPETokenizer.train("some text", 100)
    with pytest.raises(ValueError, match="vocab_size must be given"):
        bpe.ByteBPETokenizer.train("some text", None)
    with pytest.raises(ValueError, match="text must not be empty"):
        bpe.ByteBPETokenizer.train("", 300)
    for bad in (small_bpe.vocab_size, -1):
        with pytest.raises(ValueError, match="is not in this vocabulary of 400"):
            small_bpe.decode([bad])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an integer, got NoneType"):
        small_bpe.decode([None])
    with pytest.raises(TypeError, match="vocab_size must be an integer, got str"):
        bpe.ByteBPETokenizer.train("some text", "300")
    with pytest.raises(TypeError, match="text must be a string"):
        small_bpe.encode(b"bytes")
    with pytest.raises(ValueError, match=r"merges\[0\] must be two ids below 256"):
        bpe.ByteBPETokenizer([(97, 256)])
    with pytest.raises(ValueError, match=r"merges\[1\] must be two ids below 257"):
        bpe.ByteBPETokenizer([(97, 98), (1, 2, 3)])
    with pytest.raises(TypeError, match="pattern must be a regular expression string"):
        bpe.ByteBPETokenizer([], pattern=None)


def test_byte_bpe_save_and_load(small_bpe, tmp_path):
    path = tmp_path / "bpe.json"
    small_bpe.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["type"] == "byte_bpe" and saved["pattern"] == bpe.GPT2_SPLIT_PATTERN
    assert saved["merges"][:2] == [list(m) for m in small_bpe.merges[:2]]
    again = bpe.ByteBPETokenizer.load(path)
    assert again.merges == small_bpe.merges
    text = "Now is the winter of our discontent 🙂"
    assert again.encode(text) == small_bpe.encode(text)
    with pytest.raises(ValueError, match="not a 'char' one"):
        tokenizers.CharTokenizer.load(path)


# --------------------------------------------------------------------------- ties

# Three pairs occur once each in " a bc": (" ", "a"), (" ", "b") and ("b", "c"), a three-way tie.
TIE_TEXT = " a bc"


def test_ties_go_to_the_smallest_pair_of_byte_ids():
    chunks = bpe.chunk_counts(TIE_TEXT)
    assert chunks == {b" a": 1, b" bc": 1}
    first = bpe.train_bpe(chunks, 1)
    assert first == bpe.train_bpe_naive(chunks, 1) == [(32, 97)]  # space < "b"
    # (32, 97) < (32, 98) < (98, 99) as tuples; then " b" (257) is followed by "c"
    assert bpe.train_bpe(chunks, 3) == [(32, 97), (32, 98), (257, 99)]


def test_byte_rank_reorders_the_bytes_only_for_ties():
    chunks = bpe.chunk_counts(TIE_TEXT)
    rank = bpe.HF_BYTE_RANK
    assert sorted(rank) == list(range(256))
    assert rank[ord("a")] < rank[ord("b")] < rank[ord(" ")]  # the space is "Ġ", U+0120
    # with the space ranked after the letters, ("b", "c") wins the tie
    assert bpe.train_bpe(chunks, 1, byte_rank=rank) == [(98, 99)]
    # a merged id keeps its meaning: 256 is "bc" both times
    assert bpe.train_bpe(chunks, 3, byte_rank=rank) == [(98, 99), (32, 97), (32, 256)]
    # without ties the rank changes nothing
    text = data.load_corpus("val", "small")[:5_000]
    counts = bpe.chunk_counts(text)
    merges = bpe.train_bpe(counts, 30)
    identity = list(range(256))
    assert bpe.train_bpe(counts, 30, byte_rank=identity) == merges
    with pytest.raises(ValueError, match="byte_rank must hold each of 0..255 exactly once"):
        bpe.train_bpe(chunks, 1, byte_rank=[0] * 256)
    with pytest.raises(TypeError, match="byte_rank must be a sequence of 256 ints"):
        bpe.train_bpe(chunks, 1, byte_rank="abc")
    with pytest.raises(TypeError, match=r"byte_rank\[0\] must be an integer"):
        bpe.train_bpe(chunks, 1, byte_rank=[0.5] * 256)


# --------------------------------------------------------------------------- special tokens

EOT = "<|endoftext|>"


def documents() -> list[str]:
    """Fifty short documents: the validation text's paragraphs."""
    paragraphs = [p for p in data.load_corpus("val", "small").split("\n\n") if p.strip()]
    return paragraphs[:50]


@pytest.fixture(scope="module")
def bpe_special():
    """A BPE trained on documents joined by <|endoftext|>, with three special tokens."""
    text = EOT.join(documents())
    return bpe.ByteBPETokenizer.train(text, 400, special_tokens=[EOT, "<|end|>", "<|end"])


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
        together.update(bpe.chunk_counts(d))
    assert bpe.chunk_counts(text, special_tokens=[EOT]) == dict(together)
    # so training on the joined text learns the merges of the documents
    tok = bpe.ByteBPETokenizer.train(text, 300, special_tokens=[EOT])
    assert tok.merges == bpe.train_bpe(dict(together), 300 - 256 - 1)
    # and no learned token holds any part of the special token's text
    assert not any(b"<|" in t or b"|>" in t for t in tok.token_bytes[256:-1])
    # without the special token, its text is trained on like any other text
    plain = bpe.ByteBPETokenizer.train(text, 300)
    assert any(b"<|" in t or b"|>" in t for t in plain.token_bytes[256:])


def test_the_longest_special_token_wins(bpe_special):
    tok = bpe_special
    ids = tok.special_ids
    assert tok.encode("<|endoftext|>") == [ids[EOT]]  # not "<|end" + "oftext|>"
    assert tok.encode("<|end|>") == [ids["<|end|>"]]  # not "<|end" + "|>"
    assert tok.encode("<|end") == [ids["<|end"]]
    assert tok.encode("<|endoftext") == [ids["<|end"], *tok.encode("oftext")]
    # the order of the list does not matter: the longest match is taken, not the first listed
    reverse = bpe.ByteBPETokenizer(tok.merges, special_tokens=tok.special_tokens[::-1])
    text = "<|endoftext|><|end|><|end|>x<|end"
    pieces = [tok.decode([i]) for i in tok.encode(text)]
    assert [reverse.decode([i]) for i in reverse.encode(text)] == pieces
    assert pieces == [EOT, "<|end|>", "<|end|>", "x", "<|end"]
    # leftmost first, then longest: "ab" starts before "bcd", so "abcd" is "ab" + "cd"
    assert bpe.split_on_special("abcd", ["bcd", "ab"]) == [("ab", True), ("cd", False)]
    assert bpe.split_on_special("xbcd", ["bcd", "ab"]) == [("x", False), ("bcd", True)]


def test_split_on_special():
    assert bpe.split_on_special("", [EOT]) == []
    assert bpe.split_on_special("abc", []) == [("abc", False)]
    assert bpe.split_on_special(f"a{EOT}{EOT}b", [EOT]) == [
        ("a", False),
        (EOT, True),
        (EOT, True),
        ("b", False),
    ]
    assert bpe.special_token_regex([]) is None


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
        bpe.ByteBPETokenizer.train("some text", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TypeError, match="special_tokens must be a list of strings"):
        bpe.ByteBPETokenizer.train("some text", 300, special_tokens=EOT)
    with pytest.raises(TypeError, match=r"special_tokens\[1\] must be a string, got bytes"):
        bpe.ByteBPETokenizer([], special_tokens=[EOT, b"<|x|>"])
    with pytest.raises(ValueError, match=r"special_tokens\[0\] is empty"):
        bpe.ByteBPETokenizer([], special_tokens=[""])
    with pytest.raises(ValueError, match="special_tokens must not repeat"):
        bpe.ByteBPETokenizer([], special_tokens=[EOT, EOT])
    # room for the special tokens only: no merges at all
    tok = bpe.ByteBPETokenizer.train("some text", 257, special_tokens=[EOT])
    assert tok.merges == [] and tok.vocab_size == 257 and tok.encode(EOT) == [256]


def test_special_tokens_save_and_load(bpe_special, tmp_path):
    path = tmp_path / "bpe.json"
    bpe_special.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["special_tokens"] == [EOT, "<|end|>", "<|end"]
    again = bpe.ByteBPETokenizer.load(path)
    assert again.special_ids == bpe_special.special_ids and again.merges == bpe_special.merges
    text = f"Now is the winter{EOT}of our <|end|> discontent<|end"
    assert again.encode(text) == bpe_special.encode(text)
    # a file saved before special tokens existed loads with none
    del saved["special_tokens"]
    path.write_text(json.dumps(saved), encoding="utf-8")
    old = bpe.ByteBPETokenizer.load(path)
    assert old.special_tokens == () and old.vocab_size == 256 + len(bpe_special.merges)


# --------------------------------------------------------------------------- streaming


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
    overlapping = bpe.ByteBPETokenizer(tok.merges, special_tokens=["<a b c>", ">z"])
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
    trained = bpe.ByteBPETokenizer.train(text, 300, special_tokens=[EOT])
    document = text + EOT + "你好 😀\r\n"
    path = tmp_path / "big.txt"
    path.write_bytes((document * 50).encode("utf-8"))
    size = path.stat().st_size
    assert size > 1_000_000
    expected = trained.encode(document) * 50  # each document ends with a special token
    # a fresh tokenizer, so that filling the chunk cache counts too
    tok = bpe.ByteBPETokenizer(trained.merges, special_tokens=[EOT])
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


# ------------------------------------------------------------------- ids of any integer type


def _decoders(small_bpe):
    """name -> (decode function, ids to decode, expected result) for each decoder here."""
    return {
        "bpe": (small_bpe.decode, small_bpe.encode("the king"), "the king"),
        "bpe bytes": (small_bpe.decode_bytes, small_bpe.encode("the king"), b"the king"),
    }


@pytest.mark.parametrize("name", ["bpe", "bpe bytes"])
def test_decode_takes_numpy_and_tensor_integers(small_bpe, name):
    decode, ids, expected = _decoders(small_bpe)[name]
    assert_decode_takes_integer_types(decode, ids, expected)


@pytest.mark.parametrize("name", ["bpe", "bpe bytes"])
def test_decode_refuses_non_integer_ids_by_type(small_bpe, name):
    decode, ids, _ = _decoders(small_bpe)[name]
    assert_decode_refuses_non_integers(decode, ids)


# --------------------------------------------------------------------------- notebook exercises
# The answer key (course_lib.exercises.nb01) is what each check cell of notebook 01 calls: a right
# answer passes and each named mistake is recognised, tried here without running the notebook.


def _verdicts(exercise, *answers):
    return [exercise(answer, quiet=True).message for answer in answers]


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
                words[chunk] = bpe.merge(ids, best, new_id)
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
    assert right(bpe.chunk_counts(text), 40) == bpe.ByteBPETokenizer.train(text, 256 + 40).merges
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
    expected = bpe.train_bpe(chunks, 3)
    assert expected == bpe.train_bpe_naive(chunks, 3) == [(97, 98), (98, 97), (100, 99)]
    assert _loop("largest", pick="largest")(chunks, 3)[0] == (100, 99)
    assert _loop("first", pick="first")(chunks, 3)[0] == (98, 97)


def test_exercise_learn_merges_stub_and_errors_get_verdicts():
    def stub(chunks, num_merges):
        raise NotImplementedError("Exercise: replace this line with your code")

    # without the early stop, min() of no counts raises once the chunks run out of pairs
    not_yet, crash = _verdicts(nb01.learn_merges, stub, _loop("no_stop", stop=False))
    assert not_yet.startswith("stub: not yet.")
    assert "case 'more merges than pairs' does not" in crash and "raised ValueError" in crash
