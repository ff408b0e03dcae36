"""Tokenizers written from scratch: text to token ids and back (notebook 01).

A language model reads integers, not text. Tokenization (分词) is the step that turns text into
a list of token ids from a fixed vocabulary; embedding (notebook 02) then maps each id to a
vector. This module builds that step, in the order notebook 01 teaches it:

    clean_text, remove_stop_words     classic clean-up (and why LLMs skip stop-word removal)
    forward_max_match, backward_...   Chinese word segmentation by dictionary, vs jieba
    CharTokenizer, WordTokenizer      one token per character / per word, with an <unk> id
    ByteBPETokenizer                  byte-level byte-pair encoding (GPT-2 style), trained here
    WordPieceTokenizer                BERT's uncased WordPiece, equal to Hugging Face's
    NextTokenDataset, pad_batch       sequence encoding: next-token windows, padding, masks

The three trainable tokenizers share one small interface:

    tok = ByteBPETokenizer.train(text, vocab_size=512)   # a classmethod: returns a tokenizer
    ids = tok.encode("To be, or not to be")              # str -> list[int]
    tok.decode(ids)                                      # list[int] -> str
    tok.save("bpe.json"); ByteBPETokenizer.load("bpe.json")   # plain JSON, never pickle

The byte-level BPE also has what a real training pipeline needs:

    ByteBPETokenizer.train(text, 512, special_tokens=["<|endoftext|>"])   # one id each, after
        # the merges; never split when encoding, never merged across in training
    tok.encode(user_text, allowed_special="none")   # their text as ordinary text
    tok.encode_file("corpus.txt")                   # ids as a stream, in bounded memory

and a documented tie rule: equally frequent pairs go to the smallest pair of ids
(`train_bpe_naive` says how Hugging Face, minbpe, tiktoken's educational trainer and
subword-nmt differ).

Unknown input. The character and word tokenizers map anything they did not see in training
to the id of "<unk>" (always id 0) and decode that id as the text "<unk>", so for them
decode(encode(s)) == s only when every piece of s was seen. The byte-level BPE has no unknown
input: every string is a sequence of UTF-8 bytes, and ids 0-255 are the 256 bytes. Decoding an
id that is not in a vocabulary is an error (ValueError), never a silent guess.
"""

from __future__ import annotations

import codecs
import heapq
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import torch

from course_lib.validate import as_int, int_at_least, token_ids

WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def split_words(text: str, lower: bool = True) -> list[str]:
    """English words (letters, with inner apostrophes as in "o'er"), lower-cased by default.

    Punctuation, digits and anything else are dropped: this is the simple word splitter of
    classic NLP (and of word2vec in notebook 02), not what a language model's tokenizer does.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    words = WORD_RE.findall(text)
    return [w.lower() for w in words] if lower else words


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {type(text).__name__}")
    return text


# =========================================================================== 1. cleaning

# A short English stop-word list of the kind bag-of-words methods remove: articles, pronouns,
# auxiliaries, prepositions, conjunctions -- and, as in most such lists, "not" and "no".
STOP_WORDS = frozenset(
    """a an the and or but nor if then so than too very of to in on at by for with from as
    into onto about up down out over under again i me my we us our you your he him his she
    her it its they them their this that these those is am are was were be been being have
    has had do does did will would shall should can could may might must not no""".split()
)


def clean_text(text: str) -> str:
    """Classic text clean-up: Unicode NFC, control characters dropped, whitespace collapsed.

    Tabs and line breaks count as whitespace; every run of whitespace becomes one space, and
    the ends are stripped. Letters, case and punctuation are kept (an LLM needs them).
    """
    _check_text(text)
    text = unicodedata.normalize("NFC", text)
    kept = []
    for c in text:
        if c.isspace():
            kept.append(" ")
        elif unicodedata.category(c) not in ("Cc", "Cf"):
            kept.append(c)
    return " ".join("".join(kept).split())


def remove_stop_words(words: Iterable[str], stop_words: Container[str] = STOP_WORDS) -> list[str]:
    """The words that are not stop words (compared in lower case), in order."""
    if isinstance(words, str):
        raise TypeError("words must be a list of words, not one string: split the text first")
    return [w for w in words if w.lower() not in stop_words]


# =========================================================================== 2. Chinese words


def jieba_dict_path() -> Path:
    """The dictionary file that ships inside the installed jieba package (jieba/dict.txt)."""
    import jieba

    path = Path(jieba.__file__).resolve().parent / "dict.txt"
    if not path.is_file():
        raise FileNotFoundError(f"jieba's dictionary is missing at {path}; reinstall jieba")
    return path


def load_word_dict(path: str | os.PathLike) -> dict[str, int]:
    """A segmentation dictionary: one `word frequency [part-of-speech]` entry per line."""
    words: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"{path}, line {n}: expected 'word frequency [tag]', got {line!r}")
            words[parts[0]] = int(parts[1])
    if not words:
        raise ValueError(f"{path} holds no words")
    return words


def jieba_cut(text: str, hmm: bool = False) -> list[str]:
    """jieba's segmentation of `text` (jieba.lcut), with its start-up log silenced.

    hmm=False (the default here) uses only jieba's dictionary: the most probable path through
    the dictionary words (a unigram model over a word graph), no guessing of new words, so
    the result is a pure function of text and dictionary.
    """
    _check_text(text)
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # before jieba builds its dictionary: no stderr noise
    return jieba.lcut(text, HMM=hmm)


def _check_max_len(max_len: object) -> int:
    return int_at_least(max_len, "max_len", 1)


def forward_max_match(text: str, vocab: Container[str], max_len: int) -> list[str]:
    """Forward maximum matching (正向最大匹配): left to right, take the longest word in `vocab`
    (at most `max_len` characters) that starts here; a character in no word stands alone."""
    _check_text(text)
    max_len = _check_max_len(max_len)
    words, i = [], 0
    while i < len(text):
        for j in range(min(len(text), i + max_len), i, -1):
            if j == i + 1 or text[i:j] in vocab:
                words.append(text[i:j])
                i = j
                break
    return words


def backward_max_match(text: str, vocab: Container[str], max_len: int) -> list[str]:
    """Backward maximum matching (逆向最大匹配): the same, from the end of the text leftwards."""
    _check_text(text)
    max_len = _check_max_len(max_len)
    words, j = [], len(text)
    while j > 0:
        for i in range(max(0, j - max_len), j):
            if i == j - 1 or text[i:j] in vocab:
                words.append(text[i:j])
                j = i
                break
    return words[::-1]


def _spans(words: Sequence[str]) -> set[tuple[int, int]]:
    spans, start = set(), 0
    for w in words:
        spans.add((start, start + len(w)))
        start += len(w)
    return spans


def segmentation_agreement(
    predicted: Sequence[Sequence[str]], reference: Sequence[Sequence[str]]
) -> dict[str, float]:
    """How far two segmentations of the same sentences agree, word by word.

    A predicted word counts as right when the reference has a word with the same start and
    end. Returns precision (right / predicted words), recall (right / reference words), their
    F1, and `exact`, the fraction of sentences segmented identically.
    """
    if len(predicted) != len(reference) or not predicted:
        raise ValueError(
            f"predicted and reference must be equally long, non-empty lists of sentences; got "
            f"{len(predicted)} and {len(reference)}"
        )
    right = n_pred = n_ref = exact = 0
    for k, (p, r) in enumerate(zip(predicted, reference, strict=True)):
        if "".join(p) != "".join(r):
            raise ValueError(f"sentence {k}: the two segmentations are not of the same text")
        sp, sr = _spans(p), _spans(r)
        right += len(sp & sr)
        n_pred, n_ref = n_pred + len(sp), n_ref + len(sr)
        exact += list(p) == list(r)
    precision = right / n_pred if n_pred else 1.0
    recall = right / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(precision=precision, recall=recall, f1=f1, exact=exact / len(predicted))


# =========================================================================== 3. char and word

UNK = "<unk>"


def _check_vocab_size(vocab_size: object, minimum: int, why: str) -> int | None:
    if vocab_size is None:
        return None
    return int_at_least(vocab_size, "vocab_size", minimum, why)


def _check_train_text(text: object) -> str:
    _check_text(text)
    if not text:
        raise ValueError("text must not be empty: there is nothing to learn a vocabulary from")
    return text


def _write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write JSON atomically: a temporary file beside the target, then a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: str | os.PathLike, kind: str) -> dict:
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(obj, dict) or obj.get("type") != kind:
        got = obj.get("type") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} holds a {got!r} tokenizer, not a {kind!r} one")
    return obj


class _PieceTokenizer:
    """Shared code of the character and word tokenizers: a list of pieces, <unk> at id 0."""

    kind = ""

    def __init__(self, pieces: Sequence[str]):
        pieces = list(pieces)
        if not pieces or pieces[0] != UNK:
            raise ValueError(f"pieces must start with {UNK!r} (id 0)")
        if len(set(pieces)) != len(pieces):
            raise ValueError("pieces must not repeat")
        self.pieces = pieces
        self.piece_to_id = {p: i for i, p in enumerate(pieces)}

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @staticmethod
    def split(text: str) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None):
        """The most frequent pieces of `text` (ties: in sorted order), after <unk> at id 0.

        vocab_size counts <unk>; None keeps every piece seen.
        """
        _check_train_text(text)
        vocab_size = _check_vocab_size(vocab_size, 2, "(<unk> and at least one piece)")
        counts = Counter(cls.split(text))
        ranked = sorted(counts, key=lambda p: (-counts[p], p))
        if vocab_size is not None:
            ranked = ranked[: vocab_size - 1]
        return cls([UNK, *sorted(ranked)])

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; a piece not in the vocabulary becomes 0 (<unk>)."""
        _check_text(text)
        return [self.piece_to_id.get(p, 0) for p in self.split(text)]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of `ids` (id 0 decodes as "<unk>"); an id outside the vocabulary is an error.

        ids: a list or a 1-d tensor/array of integer ids (Python, NumPy or tensor integers).
        """
        return "".join(self.pieces[i] for i in token_ids(ids, len(self.pieces)))

    def save(self, path: str | os.PathLike) -> None:
        """Save as plain JSON: {"type": ..., "pieces": [...]}."""
        _write_json(path, {"type": self.kind, "pieces": self.pieces})

    @classmethod
    def load(cls, path: str | os.PathLike):
        return cls(_read_json(path, cls.kind)["pieces"])


class CharTokenizer(_PieceTokenizer):
    """One token per Unicode character (code point); unseen characters become <unk>."""

    kind = "char"

    @staticmethod
    def split(text: str) -> list[str]:
        return list(text)


# Words (letters, digits, underscore; inner apostrophes as in "o'er"), runs of whitespace, and
# single punctuation marks: the pieces concatenate back to the text exactly.
WORD_PIECE_RE = re.compile(r"\w+(?:'\w+)*|\s+|[^\w\s]")


class WordTokenizer(_PieceTokenizer):
    """One token per word, whitespace run or punctuation mark; unseen ones become <unk>.

    Case is kept, so decode(encode(s)) == s when every piece of s was seen in training. Text
    without spaces (Chinese) falls apart: a whole clause is one "word".
    """

    kind = "word"

    @staticmethod
    def split(text: str) -> list[str]:
        return WORD_PIECE_RE.findall(text)


# =========================================================================== 4. byte-level BPE

# GPT-2's pre-tokenization: English contractions, letters with one optional leading space,
# numbers, other symbols, and whitespace (a run of spaces leaves its last one to the next word).
# The same pattern as Hugging Face's pre_tokenizers.ByteLevel(use_regex=True).
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def pretokenize(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """Split text into the chunks BPE works inside (a merge never crosses a chunk)."""
    _check_text(text)
    import regex  # the `regex` package: \p{L} classes; imported here, needed by BPE only

    return regex.findall(pattern, text)


def get_pair_counts(ids: Sequence[int], counts: dict | None = None) -> dict[tuple[int, int], int]:
    """How often each adjacent pair occurs in `ids` (added to `counts` when given)."""
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _check_num_merges(num_merges: object) -> int:
    return int_at_least(num_merges, "num_merges", 0)


def train_bpe_naive(chunks: Mapping[bytes, int], num_merges: int) -> list[tuple[int, int]]:
    """BPE training, the obvious way: recount every pair of every chunk before each merge.

    chunks: each distinct pre-tokenized chunk (as UTF-8 bytes) -> how often it occurs.
    The most frequent pair wins; ties go to the smallest pair (a, b). Slow (every merge
    rescans everything); `train_bpe` gives the same merges fast.

    Ties, and how libraries differ. Pairs often have equal counts, and the rule that breaks
    the tie decides the order of the merges (and, when training stops inside a tie, which
    tokens exist). The course takes the smallest pair of ids, compared as Python compares
    tuples, with the bytes numbered by value. Hugging Face `tokenizers` also takes the
    smallest pair, but of its own ids, which number the bytes in the order of their printable
    stand-in characters (its `BpeTrainer` sorts its alphabet by code point):
    `train_bpe(..., byte_rank=HF_BYTE_RANK)` breaks ties that way, and then learns Hugging
    Face's merges in Hugging Face's order (checked in tests/test_tokenizer_reference.py; it
    would stop holding if two merges ever made the same byte string, which Hugging Face gives
    one id). minbpe and tiktoken's educational trainer take `max(stats, key=...)`, which keeps
    the tied pair counted first (an order that depends on the text), and subword-nmt takes
    `max` over (count, pair), the largest pair. (Sources read: huggingface/tokenizers
    tokenizers/src/models/bpe/trainer.rs, the `Ord` of `Merge` and `compute_alphabet`;
    karpathy/minbpe minbpe/basic.py; openai/tiktoken tiktoken/_educational.py;
    rsennrich/subword-nmt subword_nmt/learn_bpe.py.)
    """
    num_merges = _check_num_merges(num_merges)
    words = [(list(chunk), n) for chunk, n in chunks.items()]
    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges:
        counts: dict[tuple[int, int], int] = {}
        for ids, n in words:
            for pair in pairwise(ids):
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        best = min(counts, key=lambda p: (-counts[p], p))
        new_id = 256 + len(merges)
        words = [(merge(ids, best, new_id), n) for ids, n in words]
        merges.append(best)
    return merges


def _check_byte_rank(byte_rank: object) -> list[int]:
    if isinstance(byte_rank, str | bytes) or not isinstance(byte_rank, Sequence):
        raise TypeError(f"byte_rank must be a sequence of 256 ints, got {type(byte_rank).__name__}")
    rank = [as_int(r, f"byte_rank[{b}]") for b, r in enumerate(byte_rank)]
    if sorted(rank) != list(range(256)):
        raise ValueError("byte_rank must hold each of 0..255 exactly once (a reordering of bytes)")
    return rank


def _train_bpe_by_rank(
    chunks: Mapping[bytes, int], num_merges: int, rank: list[int]
) -> list[tuple[int, int]]:
    """train_bpe with the bytes renumbered by `rank`: relabel, train, and map the bytes back
    (merged ids, 256 + k, mean the same in both numberings)."""
    byte_of = sorted(range(256), key=rank.__getitem__)
    relabelled = {bytes(rank[b] for b in chunk): n for chunk, n in chunks.items()}
    back = [*byte_of, *range(256, 256 + num_merges)]
    return [(back[a], back[b]) for a, b in train_bpe(relabelled, num_merges)]


def train_bpe(
    chunks: Mapping[bytes, int], num_merges: int, byte_rank: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """BPE training with incremental pair counts: the same merges as `train_bpe_naive`.

    The naive loop recounts every pair before each merge, but a merge only changes the chunks
    that contain the merged pair. So we keep, across merges:

      pair_counts[pair]  how often `pair` occurs, weighted by chunk frequency
      where[pair]        the indices of the chunks that contain (or once contained) `pair`
      heap               (-count, pair) entries, to find the most frequent pair quickly

    and after each merge we update only the chunks in where[best]: take away the counts of
    their old pairs, merge, add the counts of their new pairs. The heap is updated lazily: a
    changed pair gets a new entry, and an entry whose count is out of date is skipped when it
    comes to the top. Ties go to the smallest pair, as in the naive version (whose docstring
    says how other libraries break ties).

    byte_rank: optional, byte_rank[b] is the place of byte b in the order that breaks ties
    (default: b itself); byte_rank=HF_BYTE_RANK breaks them as Hugging Face does.
    """
    num_merges = _check_num_merges(num_merges)
    if byte_rank is not None:
        return _train_bpe_by_rank(chunks, num_merges, _check_byte_rank(byte_rank))
    words = [list(chunk) for chunk in chunks]
    freqs = list(chunks.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, ids in enumerate(words):
        for pair in pairwise(ids):
            pair_counts[pair] += freqs[w]
            where[pair].add(w)
    heap = [(-n, pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges:
        # 1. The most frequent pair: pop until an entry agrees with the current count.
        best = None
        while heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) == -neg > 0:
                best = pair
                break
        if best is None:
            break  # no pair left anywhere
        new_id = 256 + len(merges)
        merges.append(best)
        # 2. Update only the chunks that contain it.
        changed = set()
        for w in where.pop(best):
            old = words[w]
            new = merge(old, best, new_id)
            if len(new) == len(old):
                continue  # a stale index: this chunk lost the pair to an earlier merge
            for pair in pairwise(old):
                pair_counts[pair] -= freqs[w]
                changed.add(pair)
            for pair in pairwise(new):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)
                changed.add(pair)
            words[w] = new
        # 3. New heap entries for the pairs whose counts changed; forget pairs that vanished.
        for pair in changed:
            n = pair_counts[pair]
            if n > 0:
                heapq.heappush(heap, (-n, pair))
            else:
                del pair_counts[pair]
                where.pop(pair, None)
    return merges


# --------------------------------------------------------------------------- special tokens


def _check_special_tokens(special_tokens: object) -> tuple[str, ...]:
    if isinstance(special_tokens, str | bytes) or not isinstance(special_tokens, Iterable):
        raise TypeError(
            "special_tokens must be a list of strings, e.g. ['<|endoftext|>'], got "
            f"{type(special_tokens).__name__}"
        )
    tokens = tuple(special_tokens)
    for k, t in enumerate(tokens):
        if not isinstance(t, str):
            raise TypeError(f"special_tokens[{k}] must be a string, got {type(t).__name__}")
        if not t:
            raise ValueError(f"special_tokens[{k}] is empty: a special token needs some text")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"special_tokens must not repeat, got {list(tokens)}")
    return tokens


def special_token_regex(special_tokens: Iterable[str]) -> re.Pattern | None:
    """A regular expression that finds special tokens leftmost-longest (None: no tokens).

    Scanning left to right, a match starts at the first position where any special token
    starts, and there takes the longest one: the alternatives are tried longest first, so
    with "<|end" and "<|endoftext|>" the text "<|endoftext|>" is one token, not "<|end" and
    "oftext|>". This is Hugging Face's rule for added tokens (an Aho-Corasick automaton with
    MatchKind::LeftmostLongest).
    """
    tokens = _check_special_tokens(special_tokens)
    if not tokens:
        return None
    longest_first = sorted(tokens, key=lambda t: (-len(t), t))
    return re.compile("|".join(map(re.escape, longest_first)))


def split_on_special(text: str, special_tokens: Iterable[str]) -> list[tuple[str, bool]]:
    """`text` cut at its special tokens: (piece, is_special) pairs that concatenate to `text`.

    Ordinary pieces are never empty; special tokens are found leftmost-longest
    (`special_token_regex`).
    """
    _check_text(text)
    regex_ = special_token_regex(special_tokens)
    pieces: list[tuple[str, bool]] = []
    start = 0
    for m in regex_.finditer(text) if regex_ is not None else ():
        if m.start() > start:
            pieces.append((text[start : m.start()], False))
        pieces.append((m.group(), True))
        start = m.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def chunk_counts(
    text: str, pattern: str = GPT2_SPLIT_PATTERN, special_tokens: Iterable[str] = ()
) -> dict[bytes, int]:
    """Each distinct pre-tokenized chunk of `text` as UTF-8 bytes -> how often it occurs.

    With special_tokens, the text is first cut at every special token and the special tokens
    are dropped: the pieces between them are pre-tokenized one by one, so no chunk contains a
    special token or reaches across one, and training never merges across a document boundary.
    """
    counts: Counter[bytes] = Counter()
    for piece, special in split_on_special(text, special_tokens):
        if not special:
            counts.update(c.encode("utf-8") for c in pretokenize(piece, pattern))
    return dict(counts)


class _SpecialMatcher:
    """The allowed special tokens of one encode call: their regex, and the proper prefixes of
    each (text that could still grow into a special token when more text arrives)."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens = frozenset(tokens)
        self.regex = special_token_regex(sorted(self.tokens))
        self.prefixes = frozenset(t[:k] for t in self.tokens for k in range(1, len(t)))
        self.longest = max(map(len, self.tokens), default=0)

    def hold(self, text: str) -> int:
        """The first position from which the end of `text` could become a special token."""
        for i in range(max(0, len(text) - self.longest + 1), len(text)):
            if text[i:] in self.prefixes:
                return i
        return len(text)


class ByteBPETokenizer:
    """Byte-level byte-pair encoding, as in GPT-2: ids 0-255 are bytes, then one id per merge,
    then one id per special token.

    merges[k] = (a, b) means: id 256 + k stands for token a followed by token b. Encoding
    splits the text with `pattern`, turns each chunk into its UTF-8 bytes and applies the
    merges in the order they were learned (lowest rank first). Any string can be encoded, and
    decode(encode(s)) == s for every string that UTF-8 can encode.

    Special tokens (for example "<|endoftext|>" between documents) are strings that always
    get one id of their own. Their ids come after the merges: special_tokens[i] is id
    256 + len(merges) + i, as GPT-2's "<|endoftext|>" is 50256, the last of its 50,257 ids.
    So bytes and merges keep their ids whatever special tokens a tokenizer has (Hugging Face's
    trainer puts them first instead, from id 0). They are found in the text leftmost-longest
    (`special_token_regex`), are never split, and training never merges across them
    (`chunk_counts` drops them before counting pairs).

    Encoding recognises every special token by default (allowed_special="all"), as Hugging
    Face does: the course builds its training text itself and marks document boundaries with
    them, and training cuts the text at all of them too. Text from users is another matter: a
    user who types "<|endoftext|>" should not end the document, so encode such text with
    allowed_special="none" (or a set of the ones allowed), and the other special tokens'
    text is then encoded as ordinary text, byte by byte and merge by merge. (tiktoken is
    stricter by default: it raises an error when the text contains a special token that is
    not explicitly allowed.)
    """

    kind = "byte_bpe"

    def __init__(
        self,
        merges: Sequence[Sequence[int]],
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Sequence[str] = (),
    ):
        self.merges: list[tuple[int, int]] = []
        for k, pair in enumerate(merges):
            new_id = 256 + k
            if len(pair) != 2 or not all(isinstance(t, int) and 0 <= t < new_id for t in pair):
                raise ValueError(
                    f"merges[{k}] must be two ids below {new_id} (earlier tokens), got {pair!r}"
                )
            self.merges.append((pair[0], pair[1]))
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a regular expression string, got {pattern!r}")
        self.pattern = pattern
        import regex

        self._regex = regex.compile(pattern)
        self.special_tokens: tuple[str, ...] = _check_special_tokens(special_tokens)
        first_special = 256 + len(self.merges)
        self.special_ids = {t: first_special + i for i, t in enumerate(self.special_tokens)}
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        self.token_bytes: list[bytes] = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.token_bytes += [t.encode("utf-8") for t in self.special_tokens]
        self._cache: dict[str, list[int]] = {}  # chunk -> ids: text repeats its words
        self._matchers: dict[frozenset[str], _SpecialMatcher] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Sequence[str] = (),
    ) -> ByteBPETokenizer:
        """Learn a tokenizer of vocab_size ids from `text`: 256 bytes, vocab_size - 256 -
        len(special_tokens) merges (fewer if the text runs out of pairs), then the special
        tokens. The text is cut at its special tokens before pairs are counted
        (`chunk_counts`), so no merge reaches across or into one."""
        _check_train_text(text)
        special_tokens = _check_special_tokens(special_tokens)
        if vocab_size is None:
            raise ValueError("vocab_size must be given for byte-level BPE (256 bytes + merges)")
        n_special = len(special_tokens)
        why = "for byte-level BPE (the 256 bytes come first)"
        if n_special:
            why = f"for byte-level BPE (256 bytes and {n_special} special tokens)"
        vocab_size = _check_vocab_size(vocab_size, 256 + n_special, why)
        chunks = chunk_counts(text, pattern, special_tokens)
        return cls(train_bpe(chunks, vocab_size - 256 - n_special), pattern, special_tokens)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # the adjacent pair that was merged earliest in training; none left: done
            pair = min(pairwise(ids), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            ids = merge(ids, pair, 256 + self.ranks[pair])
        return ids

    def _encode_chunks(self, chunks: Iterable[str], out: list[int]) -> None:
        for chunk in chunks:
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(self._cache) < 100_000:
                    self._cache[chunk] = ids
            out.extend(ids)

    def _matcher(self, allowed_special: str | Iterable[str]) -> _SpecialMatcher:
        if isinstance(allowed_special, str):
            if allowed_special not in ("all", "none"):
                raise ValueError(
                    "allowed_special must be 'all', 'none' or a set of special tokens, got "
                    f"{allowed_special!r}"
                )
            allowed = frozenset(self.special_tokens if allowed_special == "all" else ())
        elif isinstance(allowed_special, Iterable) and not isinstance(allowed_special, bytes):
            allowed = frozenset(allowed_special)
            unknown = sorted(map(repr, allowed - set(self.special_tokens)))
            if unknown:
                raise ValueError(
                    f"allowed_special names {', '.join(unknown)}, not among this tokenizer's "
                    f"special tokens {list(self.special_tokens)}"
                )
        else:
            raise TypeError(
                "allowed_special must be 'all', 'none' or a set of special tokens, got "
                f"{type(allowed_special).__name__}"
            )
        if allowed not in self._matchers:
            self._matchers[allowed] = _SpecialMatcher(allowed)
        return self._matchers[allowed]

    def _encode_text(self, text: str, matcher: _SpecialMatcher, out: list[int]) -> None:
        start = 0
        for m in matcher.regex.finditer(text) if matcher.regex is not None else ():
            self._encode_chunks(self._regex.findall(text[start : m.start()]), out)
            out.append(self.special_ids[m.group()])
            start = m.end()
        self._encode_chunks(self._regex.findall(text[start:]), out)

    def encode(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """Token ids of any string.

        allowed_special: "all" (the default) encodes every special token in the text as its
        one id; "none" encodes their text as ordinary text; a set of special tokens allows
        only those.
        """
        _check_text(text)
        out: list[int] = []
        self._encode_text(text, self._matcher(allowed_special), out)
        return out

    def _encode_finished(self, text: str, matcher: _SpecialMatcher, out: list[int]) -> str:
        """Encode the head of `text` that more text can no longer change; return the rest.

        Two things can still change at the end of the text. A special token may be under way:
        from `hold` on, the text is the start of one, so it is held. And the pre-tokenizer's
        last chunks may grow: "don" + "'t" and " the" + "re" and a run of spaces that gives its
        last space to the next word. Each GPT-2 chunk is decided by the text up to one
        character past its end (or three past its start, for "'ll"), so every chunk but the
        last two is final: the last two are held.
        """
        hold = matcher.hold(text)
        start = 0
        if matcher.regex is not None:
            last = None
            for m in matcher.regex.finditer(text):
                if m.start() >= hold:
                    break
                last = m  # a match that starts before `hold` cannot grow: it is final
            if last is not None:
                self._encode_text(text[: last.end()], matcher, out)
                start = last.end()
        chunks = self._regex.findall(text[start:hold]) if start < hold else []
        finished = chunks[:-2]
        self._encode_chunks(finished, out)
        return text[start + sum(map(len, finished)) :]

    def encode_stream(
        self, pieces: Iterable[str], allowed_special: str | Iterable[str] = "all"
    ) -> Iterator[int]:
        """Token ids of the text that `pieces` make together, produced as the pieces arrive.

        Equal to encode("".join(pieces)), but only the unfinished tail of the text is kept
        between pieces (`_encode_finished` says which tail), so memory stays bounded by the
        size of a piece plus the longest pre-tokenized chunk, however long the stream. (One
        chunk is held whole: a stream that is one endless word holds all of it.) The rule that
        decides the tail is written for the GPT-2 pattern, which the tests check; a pattern
        that looks further ahead would need a longer tail.
        """
        matcher = self._matcher(allowed_special)
        if isinstance(pieces, str | bytes) or not isinstance(pieces, Iterable):
            raise TypeError(
                f"pieces must be an iterable of strings (not one string), got "
                f"{type(pieces).__name__}"
            )
        return self._stream(pieces, matcher)

    def _stream(self, pieces: Iterable[str], matcher: _SpecialMatcher) -> Iterator[int]:
        tail = ""
        for k, piece in enumerate(pieces):
            _check_text(piece, f"pieces[{k}]")
            out: list[int] = []
            tail = self._encode_finished(tail + piece, matcher, out)
            yield from out
        out = []
        self._encode_text(tail, matcher, out)
        yield from out

    def encode_file(
        self,
        path: str | os.PathLike,
        chunk_size: int = 1 << 16,
        allowed_special: str | Iterable[str] = "all",
    ) -> Iterator[int]:
        """Token ids of a UTF-8 text file, read `chunk_size` bytes at a time.

        Equal to encode(Path(path).read_bytes().decode("utf-8")) (line ends are kept as they
        are in the file), in bounded memory: see `encode_stream`. A read may end inside a
        character of two to four bytes; an incremental UTF-8 decoder keeps those bytes for the
        next read, so a character is never cut. Invalid UTF-8 raises UnicodeDecodeError.
        """
        chunk_size = int_at_least(chunk_size, "chunk_size", 1)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}")

        def pieces() -> Iterator[str]:
            decoder = codecs.getincrementaldecoder("utf-8")()
            with open(path, "rb") as f:
                while block := f.read(chunk_size):
                    yield decoder.decode(block)
            yield decoder.decode(b"", final=True)  # an incomplete last character: an error

        return self.encode_stream(pieces(), allowed_special)

    def decode_bytes(self, ids: Sequence[int] | torch.Tensor) -> bytes:
        """The bytes the ids stand for; an id outside the vocabulary is an error.

        ids: a list or a 1-d tensor/array of integer ids (Python, NumPy or tensor integers).
        A special token's id gives its text's UTF-8 bytes.
        """
        return b"".join(self.token_bytes[i] for i in token_ids(ids, len(self.token_bytes)))

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of `ids`. A cut through a multi-byte character decodes as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def save(self, path: str | os.PathLike) -> None:
        """Save as plain JSON: the pattern, the merges in order, and the special tokens in
        order (special_tokens[i] is id 256 + len(merges) + i)."""
        _write_json(
            path,
            {
                "type": self.kind,
                "pattern": self.pattern,
                "merges": [list(m) for m in self.merges],
                "special_tokens": list(self.special_tokens),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ByteBPETokenizer:
        obj = _read_json(path, cls.kind)
        # files saved before special tokens existed have none
        return cls(obj["merges"], obj["pattern"], obj.get("special_tokens", []))


def _byte_symbol_table() -> list[str]:
    # Printable bytes stand for themselves; the other 68 (control bytes, space, ...) are
    # shifted to the characters from U+0100 on, in byte order. Space (32) becomes "Ġ".
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + k) for k, b in enumerate(others)})
    return [table[b] for b in range(256)]


BYTE_SYMBOLS = tuple(_byte_symbol_table())

# Where Hugging Face's BpeTrainer puts each byte in its own numbering: it sorts its alphabet,
# the stand-in characters above, by code point, so letters come before the space ("Ġ", U+0120).
# train_bpe(..., byte_rank=HF_BYTE_RANK) breaks ties as Hugging Face does.
HF_BYTE_RANK = tuple(sorted(BYTE_SYMBOLS).index(s) for s in BYTE_SYMBOLS)


def bytes_to_symbols(data: bytes) -> str:
    """Bytes as GPT-2's printable stand-in characters, one per byte: b" the" -> "Ġthe".

    Hugging Face's ByteLevel pre-tokenizer shows tokens this way; the course uses it to compare
    its tokens with Hugging Face's.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return "".join(BYTE_SYMBOLS[b] for b in data)


def bytes_per_token(tokenizer, texts: str | Sequence[str]) -> float:
    """UTF-8 bytes of `texts` divided by the number of tokens `tokenizer.encode` makes of them.

    `tokenizer` is anything with encode(str) -> list of ids (the course's, or Hugging Face's
    `tokenizers.Tokenizer`, whose encode returns an object with .ids).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = 0
    for t in texts:
        ids = tokenizer.encode(t)
        n_tokens += len(getattr(ids, "ids", ids))
    if n_tokens == 0:
        raise ValueError("texts must hold at least one token (they are empty)")
    return n_bytes / n_tokens


# =========================================================================== 5. BERT WordPiece

# The CJK Unified Ideographs blocks that BERT surrounds with spaces, as in Hugging Face's
# BertNormalizer (its fourth extension block starts at U+2B920).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def is_cjk(c: str) -> bool:
    """Whether the character is a CJK ideograph (汉字) that BERT treats as a word of its own."""
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _bert_is_control(c: str) -> bool:
    # Tab, newline and carriage return are whitespace; other control (Cc), format (Cf, e.g.
    # the zero-width space), private-use (Co) and surrogate (Cs) characters are dropped.
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


def _bert_is_whitespace(c: str) -> bool:
    return c in "\t\n\r" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def _bert_is_punctuation(c: str) -> bool:
    # All ASCII symbols count ($, +, <, ^, ... are not Unicode punctuation), then category P*.
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def bert_normalize(text: str, lowercase: bool = True) -> str:
    """BERT's normalizer, in Hugging Face's order.

    1. clean: drop NUL, U+FFFD and control/format characters; any whitespace becomes " ";
    2. put spaces around CJK ideographs (each becomes a word);
    3. (uncased models) strip accents: decompose (NFD) and drop non-spacing marks, é -> e;
    4. (uncased models) lower-case one character at a time (so Σ -> σ even at a word's end).
    """
    _check_text(text)
    out = []
    for c in text:
        if c in ("\x00", "\ufffd") or _bert_is_control(c):
            continue
        if _bert_is_whitespace(c):
            out.append(" ")
        elif is_cjk(c):
            out.append(f" {c} ")
        else:
            out.append(c)
    text = "".join(out)
    if lowercase:
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
        text = "".join(c.lower() for c in text)
    return text


def bert_pre_tokenize(text: str) -> list[str]:
    """Split normalized text on whitespace, and make every punctuation mark its own word."""
    _check_text(text)
    words = []
    for chunk in text.split():
        current = ""
        for c in chunk:
            if _bert_is_punctuation(c):
                if current:
                    words.append(current)
                words.append(c)
                current = ""
            else:
                current += c
        if current:
            words.append(current)
    return words


def bert_basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """BERT's basic tokenizer: normalize, then split on whitespace and punctuation."""
    return bert_pre_tokenize(bert_normalize(text, lowercase))


def wordpiece(
    word: str,
    vocab: Container[str],
    unk_token: str = "[UNK]",
    max_chars: int = 100,
    prefix: str = "##",
) -> list[str]:
    """WordPiece for one word: greedy longest match first, continuations marked with "##".

    From the start of the word, take the longest piece in `vocab`; then, from where it ended,
    the longest "##"-piece; and so on. A word longer than `max_chars` characters, or one with
    a stretch no piece covers, becomes [unk_token] as a whole.
    """
    _check_text(word, "word")
    max_chars = int_at_least(max_chars, "max_chars", 1)
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BERT's uncased WordPiece tokenizer, built from a vocabulary list (line i is id i).

    Special tokens written literally in the text ("[SEP]", "[MASK]", ...) are kept whole, as
    Hugging Face does; the text between them goes through `bert_basic_tokenize` and
    `wordpiece`. `encode_batch` adds [CLS] and [SEP], truncates and pads.

    With the vocabulary of all-MiniLM-L6-v2 it gives the reference tokenizer's ids exactly
    (tests/test_tokenizer_reference.py). The one known difference: this code asks Python's
    `unicodedata` which characters are punctuation, accents or invisible, while the reference
    uses tables from an older Unicode version, so on characters assigned or re-classified
    since then (about a hundred rare ones in the Basic Multilingual Plane) they can disagree.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        lowercase: bool = True,
        max_chars_per_word: int = 100,
        special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
    ):
        vocab = list(vocab)
        missing = [t for t in special_tokens if t not in vocab]
        if missing:
            raise ValueError(f"vocab lacks the special tokens {missing}")
        self.vocab = vocab
        self.token_to_id = {t: i for i, t in enumerate(vocab)}
        self.lowercase = lowercase
        self.max_chars_per_word = max_chars_per_word
        self.special_tokens = tuple(special_tokens)
        longest_first = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (
            self.token_to_id[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of `text`, without [CLS] and [SEP]."""
        _check_text(text)
        tokens = []
        for part in self._special_re.split(text):
            if part in self.special_tokens:
                tokens.append(part)
                continue
            for word in bert_basic_tokenize(part, self.lowercase):
                tokens += wordpiece(word, self.token_to_id, "[UNK]", self.max_chars_per_word)
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, as [CLS] ... [SEP] unless add_special_tokens=False."""
        ids = [self.token_to_id[t] for t in self.tokenize(text)]
        return [self.cls_id, *ids, self.sep_id] if add_special_tokens else ids

    def convert_ids_to_tokens(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """The token of each id: a list or a 1-d tensor/array of integer ids."""
        return [self.vocab[i] for i in token_ids(ids, len(self.vocab))]

    def encode_batch(
        self,
        texts: Sequence[str],
        max_length: int = 256,
        padding: bool = True,
        truncation: bool = True,
    ) -> dict[str, list[list[int]]]:
        """input_ids and attention_mask for a batch, like the Hugging Face tokenizer's
        `tok(texts, padding=True, truncation=True, max_length=max_length)`.

        Each row is [CLS] tokens [SEP], cut to max_length (the tokens lose their tail, [SEP]
        stays) and padded with [PAD] to the longest row; attention_mask is 1 on real tokens,
        0 on padding. Both are lists of `len(texts)` lists of equal length.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError("texts must be a list of strings (a batch); wrap one text in [...]")
        if not texts:
            raise ValueError("texts must hold at least one text")
        max_length = int_at_least(max_length, "max_length", 2, "([CLS] and [SEP])")
        rows = []
        for k, text in enumerate(texts):
            _check_text(text, f"texts[{k}]")
            ids = self.encode(text, add_special_tokens=False)
            if truncation:
                ids = ids[: max_length - 2]
            rows.append([self.cls_id, *ids, self.sep_id])
        width = max(map(len, rows)) if padding else 0
        input_ids = [r + [self.pad_id] * (width - len(r)) for r in rows]
        attention_mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        return {"input_ids": input_ids, "attention_mask": attention_mask}


# =========================================================================== 6. sequences


def _as_ids(ids: Sequence[int] | torch.Tensor, name: str = "ids") -> torch.Tensor:
    t = torch.as_tensor(ids)
    if t.dim() != 1:
        raise ValueError(
            f"{name} must be one-dimensional (a token stream), got shape {tuple(t.shape)}"
        )
    if t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer token ids, got dtype {t.dtype}")
    return t.long()


class NextTokenDataset(torch.utils.data.Dataset):
    """Next-token windows over a token stream: item t is (x[t:t+B], x[t+1:t+B+1]).

    ids: (N,) token ids; block_size B: the context length. Item t is a pair of (B,) long
    tensors; the target at position i is the token after input position i. There are
    N - B items (every start whose target window fits).
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor, block_size: int):
        block_size = int_at_least(block_size, "block_size", 1)
        self.ids = _as_ids(ids)
        if len(self.ids) < block_size + 1:
            raise ValueError(
                f"block_size {block_size} needs at least {block_size + 1} tokens (inputs plus "
                f"the one next token), got {len(self.ids)}"
            )
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= t < len(self):
            raise IndexError(f"window {t} is out of range for {len(self)} windows")
        t = t % len(self)
        window = self.ids[t : t + self.block_size + 1]
        return window[:-1], window[1:]


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad sequences of unequal length into one batch.

    Returns ids (batch, T) and attention_mask (batch, T), both long, where T is the longest
    length: the mask is 1 on real tokens and 0 on padding. side="left" pads in front (as
    decoder-only models do when they generate a batch).
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    pad_id = as_int(pad_id, "pad_id")
    rows = [_as_ids(s, f"seqs[{k}]") for k, s in enumerate(seqs)]
    if not rows:
        raise ValueError("seqs must hold at least one sequence")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        span = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[k, span] = r
        mask[k, span] = 1
    return ids, mask
