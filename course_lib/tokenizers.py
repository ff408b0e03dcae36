"""Tokenizers written from scratch: text to token ids and back (notebook 01).

A language model reads integers, not text. Tokenization (分词) is the step that turns text into
a list of token ids from a fixed vocabulary; embedding (notebook 02) then maps each id to a
vector. This module builds the first steps, and what every tokenizer shares, in the order
notebook 01 teaches them:

    clean_text, remove_stop_words     classic clean-up (and why LLMs skip stop-word removal)
    forward_max_match, backward_...   Chinese word segmentation by dictionary, vs jieba
    CharTokenizer, WordTokenizer      one token per character / per word, with an <unk> id
    bytes_per_token                   how well any tokenizer compresses text
    NextTokenDataset, pad_batch       sequence encoding: next-token windows, padding, masks

The subword tokenizers have modules of their own, built on this one (its text check and JSON
helpers, `check_text`, `write_json`, `read_json`):

    course_lib.bpe                    ByteBPETokenizer: byte-level BPE (GPT-2 style)
    course_lib.wordpiece              WordPieceTokenizer: BERT's uncased WordPiece

The trainable tokenizers (character, word, byte-level BPE) share one small interface:

    tok = WordTokenizer.train(text, vocab_size=5000)     # a classmethod: returns a tokenizer
    ids = tok.encode("To be, or not to be")              # str -> list[int]
    tok.decode(ids)                                      # list[int] -> str
    tok.save("word.json"); WordTokenizer.load("word.json")   # plain JSON, never pickle

Unknown input. The character and word tokenizers map anything they did not see in training
to the id of "<unk>" (always id 0) and decode that id as the text "<unk>", so for them
decode(encode(s)) == s only when every piece of s was seen. The byte-level BPE has no unknown
input (course_lib.bpe). Decoding an id that is not in a vocabulary is an error (ValueError),
never a silent guess.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Container, Iterable, Sequence
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


def check_text(text: object, name: str = "text") -> str:
    """`text`, after checking that it is a string (TypeError naming `name` if not)."""
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
    check_text(text)
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
    check_text(text)
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # before jieba builds its dictionary: no stderr noise
    return jieba.lcut(text, HMM=hmm)


def _check_max_len(max_len: object) -> int:
    return int_at_least(max_len, "max_len", 1)


def forward_max_match(text: str, vocab: Container[str], max_len: int) -> list[str]:
    """Forward maximum matching (正向最大匹配): left to right, take the longest word in `vocab`
    (at most `max_len` characters) that starts here; a character in no word stands alone."""
    check_text(text)
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
    check_text(text)
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


def check_vocab_size(vocab_size: object, minimum: int, why: str) -> int | None:
    """None, or `vocab_size` as an int of at least `minimum` (`why` says why that minimum)."""
    if vocab_size is None:
        return None
    return int_at_least(vocab_size, "vocab_size", minimum, why)


def check_train_text(text: object) -> str:
    """`text`, after checking that it is a non-empty string: training needs some text."""
    check_text(text)
    if not text:
        raise ValueError("text must not be empty: there is nothing to learn a vocabulary from")
    return text


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write JSON atomically: a temporary file beside the target, then a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike, kind: str) -> dict:
    """A saved tokenizer's JSON object; ValueError unless its "type" is `kind`."""
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
        check_train_text(text)
        vocab_size = check_vocab_size(vocab_size, 2, "(<unk> and at least one piece)")
        counts = Counter(cls.split(text))
        ranked = sorted(counts, key=lambda p: (-counts[p], p))
        if vocab_size is not None:
            ranked = ranked[: vocab_size - 1]
        return cls([UNK, *sorted(ranked)])

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; a piece not in the vocabulary becomes 0 (<unk>)."""
        check_text(text)
        return [self.piece_to_id.get(p, 0) for p in self.split(text)]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of `ids` (id 0 decodes as "<unk>"); an id outside the vocabulary is an error.

        ids: a list or a 1-d tensor/array of integer ids (Python, NumPy or tensor integers).
        """
        return "".join(self.pieces[i] for i in token_ids(ids, len(self.pieces)))

    def save(self, path: str | os.PathLike) -> None:
        """Save as plain JSON: {"type": ..., "pieces": [...]}."""
        write_json(path, {"type": self.kind, "pieces": self.pieces})

    @classmethod
    def load(cls, path: str | os.PathLike):
        return cls(read_json(path, cls.kind)["pieces"])


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


# =========================================================================== 4. sequences


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
