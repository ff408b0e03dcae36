"""BERT's uncased WordPiece tokenizer, rebuilt from scratch (notebook 01).

The course's pretrained model (all-MiniLM-L6-v2, `course_lib.pretrained`) reads WordPiece ids.
They are made in two stages, in the order notebook 01 teaches them:

    bert_normalize, bert_pre_tokenize    the basic tokenizer: clean, space out CJK ideographs,
    (bert_basic_tokenize: both)          strip accents, lower-case; split on spaces/punctuation
    wordpiece                            one word: greedy longest match first, "##" continues
    WordPieceTokenizer                   both, with special tokens, [CLS]/[SEP] and padding

With the model's vocabulary it gives the reference tokenizer's ids exactly
(tests/test_tokenizer_reference.py). Unlike the trainable tokenizers of `course_lib.tokenizers`
(whose text check it uses) it is not trained here: its vocabulary comes with the model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Sequence

import torch

from course_lib.tokenizers import check_text
from course_lib.validate import int_at_least, token_ids

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
    check_text(text)
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
    check_text(text)
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
    check_text(word, "word")
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
        check_text(text)
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
            check_text(text, f"texts[{k}]")
            ids = self.encode(text, add_special_tokens=False)
            if truncation:
                ids = ids[: max_length - 2]
            rows.append([self.cls_id, *ids, self.sep_id])
        width = max(map(len, rows)) if padding else 0
        input_ids = [r + [self.pad_id] * (width - len(r)) for r in rows]
        attention_mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        return {"input_ids": input_ids, "attention_mask": attention_mask}
