"""Byte-level byte-pair encoding (BPE), GPT-2 style, trained from scratch (notebook 01).

Ids 0-255 are the 256 bytes of UTF-8, so any string can be encoded and nothing is unknown;
training adds one id per merge of the most frequent adjacent pair. In notebook 01's order:

    pretokenize, get_pair_counts, merge   one training step: chunks, pair counts, a merge
    train_bpe_naive, train_bpe            training: recount everything, or count incrementally
    ByteBPETokenizer                      train, encode, decode, save, load: as in tokenizers
    bytes_to_symbols, HF_BYTE_RANK        Hugging Face's view of the bytes, to compare with it
    special_tokens=["<|endoftext|>"]      one id each, after the merges: never split when
                                          encoding, never merged across in training
    encode_stream, encode_file            a text's ids as a stream, in bounded memory

Ties go to the smallest pair of ids (`train_bpe_naive` says how Hugging Face, minbpe, tiktoken's
educational trainer and subword-nmt differ). Decoding an id not in the vocabulary is an error.
"""

from __future__ import annotations

import codecs
import heapq
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import torch

from course_lib.tokenizers import (
    check_text,
    check_train_text,
    check_vocab_size,
    read_json,
    write_json,
)
from course_lib.validate import as_int, int_at_least, token_ids

# GPT-2's pre-tokenization: English contractions, letters with one optional leading space,
# numbers, other symbols, and whitespace (a run of spaces leaves its last one to the next word).
# The same pattern as Hugging Face's pre_tokenizers.ByteLevel(use_regex=True).
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def pretokenize(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """Split text into the chunks BPE works inside (a merge never crosses a chunk)."""
    check_text(text)
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
    check_text(text)
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
        check_train_text(text)
        special_tokens = _check_special_tokens(special_tokens)
        if vocab_size is None:
            raise ValueError("vocab_size must be given for byte-level BPE (256 bytes + merges)")
        n_special = len(special_tokens)
        why = "for byte-level BPE (the 256 bytes come first)"
        if n_special:
            why = f"for byte-level BPE (256 bytes and {n_special} special tokens)"
        vocab_size = check_vocab_size(vocab_size, 256 + n_special, why)
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
        check_text(text)
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
            check_text(piece, f"pieces[{k}]")
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
        write_json(
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
        obj = read_json(path, cls.kind)
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
