"""Notebook 01's exercises: forward maximum matching, one BPE merge, the BPE training loop,
WordPiece for one word, and next-token windows.

The module-sized one is the BPE training loop (`learn_merges`): given chunk counts (each
distinct chunk's UTF-8 bytes -> how often it occurs, what `bpe.chunk_counts` returns)
and a number of merges, it must return exactly the merges of `bpe.train_bpe` (and so of
`ByteBPETokenizer.train`): pair counts weighted by chunk frequency, recounted after every merge,
the most frequent pair first and ties to the smallest pair, ids 256, 257, ..., and each merge
applied left to right without overlaps.

The data the checks need (the segmentation dictionary's words that occur in the course's 30
Chinese sentences, the MiniLM WordPiece vocabulary) is loaded here, once per session.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from itertools import pairwise

import torch

from course_lib import bpe as BPE
from course_lib import data, pretrained
from course_lib import tokenizers as T
from course_lib import wordpiece as WP
from course_lib.check import Verdict, case, check, mistake

# The notebook's toy text, and a few lines of Shakespeare (Sonnet 18) for a longer BPE run.
TOY_TEXT = "the cat sat on the mat; the hat is the cat's"
SMALL_TEXT = (
    "Shall I compare thee to a summer's day?\n"
    "Thou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\n"
    "And summer's lease hath all too short a date;\n"
    "Sometime too hot the eye of heaven shines,\n"
    "And often is his gold complexion dimm'd;\n"
)

# =========================================================== exercise 1: forward maximum matching


@functools.cache
def zh_sentences() -> tuple[str, ...]:
    """The course's 30 Chinese example sentences (data/zh_examples.txt)."""
    return tuple(data.load_lines("zh_examples.txt"))


@functools.cache
def zh_words() -> tuple[frozenset[str], int]:
    """(the words of jieba's dictionary that occur in the 30 sentences, the dictionary's longest
    word length). For maximum matching on those sentences they segment as the whole dictionary
    does: a word that occurs nowhere in a sentence can never be matched in it."""
    words = T.load_word_dict(T.jieba_dict_path())
    max_len = max(map(len, words))
    found = set()
    for s in zh_sentences():
        for i in range(len(s)):
            ends = range(i + 1, min(len(s), i + max_len) + 1)
            found.update(s[i:j] for j in ends if s[i:j] in words)
    return frozenset(found), max_len


def _shortest_match(text, vocab, max_len):
    words, i = [], 0
    while i < len(text):
        j = next(
            (j for j in range(i + 1, min(len(text), i + max_len) + 1) if text[i:j] in vocab), i + 1
        )
        words.append(text[i:j])
        i = j
    return words


def _drop_unknown(text, vocab, max_len):
    return [w for w in T.forward_max_match(text, vocab, max_len) if w in vocab]


def _window_one_short(text, vocab, max_len):
    return T.forward_max_match(text, vocab, max_len - 1) if max_len > 1 else list(text)


def forward_max_match(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(text, vocab, max_len) -> list of words, against tokenizers.forward_max_match."""
    zh = zh_sentences()
    vocab, max_len = zh_words()
    toy = frozenset({"研究", "研究生", "生命", "命", "的", "起源"})
    nested = frozenset({"中华", "中华人民", "人民", "共和", "共和国"})
    return check(
        fn,
        reference=T.forward_max_match,
        cases=[
            case("研究生命的起源", toy, 4, label="the classic ambiguity"),
            case("中华人民共和国", nested, 4, label="words inside longer words"),
            case(zh[0], vocab, max_len, label="a sentence with punctuation"),
            case(zh[26], vocab, max_len, label="another sentence"),
            case("我的手机没电了。GPT-2!", vocab, max_len, label="mixed scripts"),
            case("研究生命的起源", toy, 1, label="max_len=1"),
            case("", toy, 3, label="empty text"),
        ],
        mistakes=[
            mistake(
                "the shortest match",
                "maximum matching takes the LONGEST dictionary word: try the longest window first",
                _shortest_match,
            ),
            mistake(
                "dropping characters that start no word",
                "a character that begins no dictionary word is kept, as a word of one character",
                _drop_unknown,
            ),
            mistake(
                "a window one character too short",
                "the longest window is text[i:i + max_len]: max_len characters, not max_len - 1",
                _window_one_short,
            ),
        ],
        quiet=quiet,
    )


# ============================================================= exercise 2: one BPE merge step


def _merge_step_one(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        out.append(new_id if tuple(ids[i : i + 2]) == pair else ids[i])
    return out


def _merge_from_the_right(ids, pair, new_id):  # in place, backwards, so indices stay valid
    out = list(ids)
    for i in reversed(range(len(out) - 1)):
        if i + 1 < len(out) and (out[i], out[i + 1]) == pair:
            out[i : i + 2] = [new_id]
    return out


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def merge(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(ids, pair, new_id) -> ids with every occurrence of pair replaced, left to right."""
    g = torch.Generator().manual_seed(0)
    random_ids = torch.randint(0, 3, (40,), generator=g).tolist()
    return check(
        fn,
        reference=BPE.merge,
        cases=[
            case([1, 2, 3, 1, 2], (1, 2), 99, label="two occurrences"),
            case([5, 5, 5], (5, 5), 9, label="overlapping: three in a row"),
            case([5, 5, 5, 5], (5, 5), 9, label="four in a row"),
            case([3, 1, 2], (1, 2), 7, label="the pair at the end"),
            case([1, 3, 2], (1, 2), 7, label="no occurrence"),
            case([], (1, 2), 7, label="empty"),
            case(random_ids, (0, 1), 256, label="40 random ids"),
        ],
        mistakes=[
            mistake(
                "moving one step after a match",
                "a merged pair uses up both tokens: after a match, skip two positions (i += 2)",
                _merge_step_one,
            ),
            mistake(
                "merging only the first occurrence",
                "a merge replaces EVERY occurrence of the pair, not just the first",
                _merge_first_only,
            ),
        ],
        quiet=quiet,
    )


# ============================================================ exercise 3: the BPE training loop


def _smallest(counts: dict) -> tuple[int, int]:  # the library's rule
    return min(counts, key=lambda p: (-counts[p], p))


def _largest(counts: dict) -> tuple[int, int]:  # max over (count, pair): ties to the largest
    return max(counts, key=lambda p: (counts[p], p))


def _first_counted(counts: dict) -> tuple[int, int]:  # max(counts, key=counts.get)
    return max(counts, key=counts.get)


def _train(
    chunks: Mapping[bytes, int],
    num_merges: int,
    *,
    pick: Callable[[dict], tuple[int, int]] = _smallest,
    weighted: bool = True,
    merge_fn: Callable = BPE.merge,
    recount: bool = True,
) -> list[tuple[int, int]]:
    """The BPE loop with one part swappable, to write each named mistake as a learner makes it.

    pick: chooses the pair from the counts; weighted=False counts each distinct chunk once;
    merge_fn: the merge step; recount=False counts the pairs once, before the first merge, and
    then only takes each merged pair out of those counts.
    """
    words = {chunk: list(chunk) for chunk in chunks}
    merges: list[tuple[int, int]] = []
    counts: dict = {}
    for _ in range(num_merges):
        if recount or not merges:
            counts = {}
            for chunk, ids in words.items():
                for pair in pairwise(ids):
                    counts[pair] = counts.get(pair, 0) + (chunks[chunk] if weighted else 1)
        if not counts:
            break
        best = pick(counts)
        new_id = 256 + len(merges)
        words = {chunk: merge_fn(ids, best, new_id) for chunk, ids in words.items()}
        merges.append(best)
        counts.pop(best)  # (the recounting loop throws these counts away anyway)
    return merges


def learn_merges(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(chunks {bytes: count}, num_merges) -> merges [(a, b), ...], against train_bpe.

    Pair k of the result became token 256 + k; fewer than num_merges when no pair is left.
    """
    return check(
        fn,
        reference=BPE.train_bpe,
        cases=[
            case(BPE.chunk_counts(TOY_TEXT), 8, label="the toy text, 8 merges"),
            case({b"ba": 1, b"dc": 1, b"ab": 1}, 3, label="a three-way tie"),
            case({b"xy": 1, b"ab": 1, b"cd": 5}, 2, label="a frequent chunk"),
            case({b"aaa": 2, b"aaaa": 1}, 3, label="overlapping pairs: aaa and aaaa"),
            case({b"aaab": 2, b"ab": 3}, 10, label="more merges than pairs"),
            case({b"a": 3, b" ": 2}, 5, label="chunks of one byte: no pair"),
            case(BPE.chunk_counts(TOY_TEXT), 0, label="no merges"),
            case(BPE.chunk_counts(SMALL_TEXT), 40, label="six lines of a sonnet, 40 merges"),
        ],
        mistakes=[
            mistake(
                "ties going to the largest pair",
                "between pairs with the same count the SMALLEST pair (a, b) wins, comparing the "
                "tuples: (97, 98) before (98, 97)",
                functools.partial(_train, pick=_largest),
            ),
            mistake(
                "ties going to the pair counted first",
                "max(counts, key=counts.get) keeps whichever tied pair it met first; between "
                "pairs with the same count the SMALLEST pair (a, b) wins",
                functools.partial(_train, pick=_first_counted),
            ),
            mistake(
                "pairs counted without the chunk frequencies",
                "a chunk that occurs n times in the text adds n for each of its pairs: weight "
                "every pair by chunks[chunk]",
                functools.partial(_train, weighted=False),
            ),
            mistake(
                "a merge that moves one step after a match",
                "a merged pair uses up both of its tokens: skip two positions after a match, so "
                "that (a, a) in 'aaa' is merged once, [new, a], not twice (BPE.merge does this)",
                functools.partial(_train, merge_fn=_merge_step_one),
            ),
            mistake(
                "overlapping pairs merged from the right",
                "merge left to right, as BPE.merge does: with the pair (a, a), 'aaa' becomes "
                "[new, a], not [a, new]",
                functools.partial(_train, merge_fn=_merge_from_the_right),
            ),
            mistake(
                "pair counts not recounted after a merge",
                "a merge removes pairs and creates new ones that contain the new id: count the "
                "pairs again before every merge",
                functools.partial(_train, recount=False),
            ),
        ],
        quiet=quiet,
    )


# ============================================================ exercise 4: WordPiece for one word


@functools.cache
def wordpiece_vocab() -> frozenset[str]:
    """The MiniLM (BERT uncased) WordPiece vocabulary, as a set."""
    return frozenset(pretrained.vocab())


def _no_continuation_prefix(word, vocab, max_chars=100):
    return WP.wordpiece(word, vocab, max_chars=max_chars, prefix="")


def _shortest_piece_first(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        prefix = "" if start == 0 else "##"
        end = next(
            (e for e in range(start + 1, len(word) + 1) if prefix + word[start:e] in vocab), None
        )
        if end is None:
            return ["[UNK]"]
        pieces.append(prefix + word[start:end])
        start = end
    return pieces


def _unk_for_the_rest(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return pieces + ["[UNK]"]  # the pieces found so far, then [UNK]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(word, vocab, max_chars=100) -> list of pieces, against course_lib.wordpiece.wordpiece."""
    vocab = wordpiece_vocab()
    return check(
        fn,
        reference=lambda word, vocab, max_chars=100: WP.wordpiece(word, vocab, max_chars=max_chars),
        cases=[
            case("unkindest", vocab, label="three pieces"),
            case("tokenization", vocab),
            case("bolingbroke", vocab, label="a name"),
            case("thou", vocab, label="a whole word"),
            case("hello☃", vocab, label="a character not in the vocabulary"),
            case("a" * 101, vocab, label="101 characters"),
            case("abcdef", vocab, max_chars=5, label="max_chars=5"),
            case("", vocab, label="empty word"),
        ],
        mistakes=[
            mistake(
                "continuation pieces without '##'",
                "a piece that does not start the word must be looked up as '##' + piece",
                _no_continuation_prefix,
            ),
            mistake(
                "the shortest match",
                "WordPiece takes the LONGEST piece in the vocabulary at each step",
                _shortest_piece_first,
            ),
            mistake(
                "[UNK] for the unmatched rest only",
                "when a stretch matches nothing, the WHOLE word becomes a single [UNK]",
                _unk_for_the_rest,
            ),
        ],
        quiet=quiet,
    )


# ========================================================= exercise 5: next-token windows


def _windows(ids: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of NextTokenDataset, stacked: (N - block_size, block_size) each."""
    ds = T.NextTokenDataset(ids, block_size)
    inputs, targets = zip(*(ds[t] for t in range(len(ds))), strict=True)
    return torch.stack(inputs), torch.stack(targets)


def _targets_not_shifted(ids, block_size):
    inputs, _ = _windows(ids, block_size)
    return inputs, inputs.clone()


def _one_window_short(ids, block_size):
    inputs, targets = _windows(ids, block_size)
    return inputs[:-1], targets[:-1]


def _non_overlapping(ids, block_size):
    inputs, targets = _windows(ids, block_size)
    return inputs[::block_size], targets[::block_size]


def next_token_windows(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(ids (N,), block_size) -> (inputs, targets), each (N - block_size, block_size)."""
    g = torch.Generator().manual_seed(1)
    bpe = BPE.ByteBPETokenizer(BPE.train_bpe(BPE.chunk_counts(SMALL_TEXT), 40))
    real_ids = torch.tensor(bpe.encode(SMALL_TEXT)[:50])
    return check(
        fn,
        reference=_windows,
        cases=[
            case(torch.arange(10), 4, label="ids 0..9, block_size 4"),
            case(torch.randint(0, 512, (37,), generator=g), 5, label="37 random ids"),
            case(torch.arange(6), 5, label="exactly one window"),
            case(torch.arange(5), 1, label="block_size 1"),
            case(real_ids, 8, label="real tokens"),
        ],
        mistakes=[
            mistake(
                "targets equal to the inputs",
                "the target at position i is the NEXT token: slice ids[t + 1 : t + block_size + 1]",
                _targets_not_shifted,
            ),
            mistake(
                "one window too few",
                "windows start at t = 0, 1, ..., N - block_size - 1: that is N - block_size of "
                "them",
                _one_window_short,
            ),
            mistake(
                "non-overlapping windows",
                "row t starts at token t, so consecutive windows overlap by block_size - 1 tokens",
                _non_overlapping,
            ),
        ],
        quiet=quiet,
    )
