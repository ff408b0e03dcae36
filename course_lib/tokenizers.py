"""Tokenizers written from scratch: text to token ids and back.

(Notebook 01 builds this module up: character, word and byte-level BPE tokenizers, BERT's
basic tokenizer and WordPiece.)
"""

from __future__ import annotations

import re

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
