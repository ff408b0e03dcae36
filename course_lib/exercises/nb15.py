"""Notebook 15's exercises: what a text costs in tokens (bytes per token), and how an image
becomes a sequence of patch tokens."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib import bpe as BPE
from course_lib import tokenizers as T
from course_lib.check import Verdict, case, check, mistake

# A small English text to train the cases' tokenizer on, and texts in several scripts to measure.
_TRAIN = (
    "the cat sat on the mat. the dog sat on the log. the cat and the dog ran to the mat. "
    "a bird sang in the tree, and the cat looked at the bird. "
) * 3
_TEXTS = [
    "the cat sat on the mat.",
    "Die Katze saß auf der Matte.",
    "Кошка сидела на коврике.",
    "猫坐在垫子上。",
]


def _encoders() -> tuple[Callable, Callable, Callable]:
    """Three encode functions (text -> list of ids): byte-level BPE with 40 merges learned from
    a little English, raw bytes (no merges) and characters."""
    bpe = BPE.ByteBPETokenizer.train(_TRAIN, vocab_size=256 + 40)
    chars = T.CharTokenizer.train(_TRAIN + "".join(_TEXTS))

    def bpe_encode(text: str) -> list[int]:
        return bpe.encode(text)

    def byte_encode(text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def char_encode(text: str) -> list[int]:
        return chars.encode(text)

    return bpe_encode, byte_encode, char_encode


def _as_list(texts):
    return [texts] if isinstance(texts, str) else list(texts)


def _bytes_per_token(encode, texts):
    texts = _as_list(texts)
    return sum(len(t.encode("utf-8")) for t in texts) / sum(len(encode(t)) for t in texts)


def _characters(encode, texts):
    texts = _as_list(texts)
    return sum(len(t) for t in texts) / sum(len(encode(t)) for t in texts)


def _mean_of_ratios(encode, texts):
    ratios = [len(t.encode("utf-8")) / len(encode(t)) for t in _as_list(texts)]
    return sum(ratios) / len(ratios)


def _tokens_per_byte(encode, texts):
    return 1 / _bytes_per_token(encode, texts)


def _string_as_list(encode, texts):
    texts = list(texts)  # a single string becomes a list of its characters
    return sum(len(t.encode("utf-8")) for t in texts) / sum(len(encode(t)) for t in texts)


def bytes_per_token(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(encode, texts) -> float: the UTF-8 bytes of `texts` (one str or a list of str) over
    the tokens `encode` makes of them, text by text (the rule of tokenizers.bytes_per_token)."""
    bpe, raw_bytes, chars = _encoders()
    return check(
        fn,
        reference=_bytes_per_token,
        cases=[
            case(bpe, ["the cat sat on the mat."], label="one English sentence, BPE"),
            case(raw_bytes, ["the cat", "猫坐在垫子上。"], label="no merges: one token per byte"),
            case(bpe, list(_TEXTS), label="four sentences in four scripts, BPE"),
            case(chars, list(_TEXTS), label="four sentences, one token per character"),
            case(bpe, "the dog sat on the log.", label="one string, not a list"),
            case(bpe, ["a", "the cat and the dog ran to the mat and sat."], label="short and long"),
        ],
        mistakes=[
            mistake(
                "characters instead of bytes",
                "count UTF-8 bytes, len(text.encode('utf-8')): a Cyrillic letter is 2 bytes, a "
                "Chinese character 3, so characters hide what other scripts cost",
                _characters,
            ),
            mistake(
                "the mean of the per-text ratios",
                "sum the bytes of all texts and divide by the sum of their tokens; averaging "
                "per-text ratios weighs a short text as much as a long one",
                _mean_of_ratios,
            ),
            mistake(
                "tokens per byte",
                "bytes per token is bytes divided by tokens, not the other way round",
                _tokens_per_byte,
            ),
            mistake(
                "a single string taken as a list of characters",
                "when texts is one str, wrap it in a list first: iterating over a str gives its "
                "characters, and each would be encoded on its own",
                _string_as_list,
            ),
        ],
        quiet=quiet,
    )


def _patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    return F.unfold(images, kernel_size=patch, stride=patch).transpose(1, 2)


def _no_permute(images, patch):
    b, c, h, w = images.shape
    return images.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def _channels_last(images, patch):
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, -1, patch * patch * c)


def _column_order(images, patch):
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 4, 2, 1, 3, 5).reshape(b, -1, c * patch * patch)


def image_to_patches(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(images (B, C, H, W), patch) -> (B, N, C * patch * patch), against F.unfold."""
    g = torch.Generator().manual_seed(15)

    def images(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    wide = images(2, 3, 8, 12).transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous
    return check(
        fn,
        reference=_patches,
        cases=[
            case(images(1, 1, 4, 4), 2, label="one grey 4 x 4 image, 2 x 2 patches"),
            case(images(1, 3, 8, 8), 4, label="an RGB image, 4 patches"),
            case(images(2, 3, 6, 9), 3, label="a batch of 2, not square: 2 x 3 patches"),
            case(images(1, 2, 4, 4), 4, label="the patch is the whole image"),
            case(wide, 4, label="a non-contiguous batch"),
        ],
        mistakes=[
            mistake(
                "a reshape without a permute",
                "a plain reshape cuts the image into strips of rows, not squares: split H and W "
                "into (rows, patch) and (columns, patch), move the two grid axes to the front, "
                "then flatten",
                _no_permute,
            ),
            mistake(
                "channels last inside a patch",
                "flatten each patch channel first, as (C, patch, patch), the order F.unfold and "
                "a Conv2d's weight use",
                _channels_last,
            ),
            mistake(
                "patches taken column by column",
                "number the patches row by row, left to right then top to bottom (raster order)",
                _column_order,
            ),
        ],
        quiet=quiet,
    )
