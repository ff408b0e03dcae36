"""Argument checks shared by the course modules: one rule, one wording.

The rule: a wrong type is a TypeError (a str, a float or a bool where an integer is expected),
a wrong value is a ValueError (0 or a negative number where a positive integer is expected).
Every message names the argument and what was given:

    >>> positive_int("16", "d_model")
    TypeError: d_model must be an integer, got str '16'
    >>> positive_int(0, "n_heads")
    ValueError: n_heads must be a positive integer, got 0

Python, NumPy and 0-d tensor integers are accepted (`operator.index`) and returned as `int`;
bools are refused although Python counts them as integers (`True` is a mistake, not a 1).

This is the base module of course_lib: it imports no other course module, and it is the one
course module that every other module may import (tests/test_layers.py).
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence


def _is_bool(value: object) -> bool:
    """A Python bool, a NumPy bool or a bool tensor/array (anything with a bool dtype)."""
    if isinstance(value, bool):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("bool", "torch.bool")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_int(value: object, name: str) -> int:
    """`value` as an int; TypeError (naming `name`) for anything but a non-bool integer."""
    if _is_bool(value):
        raise TypeError(f"{name} must be an integer, got bool {_shown(value)}")
    if getattr(value, "ndim", 0) != 0:  # operator.index takes a one-element tensor too
        raise TypeError(
            f"{name} must be an integer, got a {type(value).__name__} of shape {tuple(value.shape)}"
        )
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {type(value).__name__} {_shown(value)}"
        ) from None


def int_at_least(value: object, name: str, minimum: int, why: str = "") -> int:
    """`value` as an int >= `minimum`: TypeError for a wrong type, ValueError below it.

    `why`, when given, follows the bound in the message: "vocab_size must be >= 2 (<unk> and
    at least one piece), got 1".
    """
    n = as_int(value, name)
    if n < minimum:
        reason = f" {why}" if why else ""
        raise ValueError(f"{name} must be >= {minimum}{reason}, got {n}")
    return n


def positive_int(value: object, name: str) -> int:
    """`value` as an int >= 1: TypeError for a wrong type, ValueError for 0 or less."""
    n = as_int(value, name)
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n


def token_ids(ids: object, vocab_size: int, name: str = "ids") -> list[int]:
    """`ids` (a list, a 1-d tensor or array of integer ids) as a list of ints in [0, vocab_size).

    An id that is not an integer is a TypeError naming it and its position; one outside the
    vocabulary is a ValueError ("id 512 is not in this vocabulary of 400").
    """
    if isinstance(ids, str | bytes) or not hasattr(ids, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integer token ids, got {type(ids).__name__}")
    shape = getattr(ids, "shape", None)
    if shape is not None and len(shape) != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(shape)}")
    out = []
    for k, i in enumerate(ids):
        j = as_int(i, f"{name}[{k}]")
        if not 0 <= j < vocab_size:
            raise ValueError(f"id {j} is not in this vocabulary of {vocab_size}")
        out.append(j)
    return out


def fraction(value: object, name: str) -> float:
    """`value` as a float in [0, 1) (a dropout rate): TypeError for a wrong type, or ValueError."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number in [0, 1), got {type(value).__name__} {_shown(value)}"
        )
    rate = float(value)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")
    return rate


def text_list(texts: object, name: str) -> list[str]:
    """A non-empty list of non-empty strings, or a clear error naming the argument."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: pass at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
        if not t:
            raise ValueError(f"{name}[{i}] is an empty string: there is nothing to read")
    return list(texts)


def same_length(a: Sequence, b: Sequence, names: tuple[str, str]) -> None:
    """A ValueError unless `a` and `b` hold as many texts; names: theirs, for the message."""
    if len(a) != len(b):
        raise ValueError(f"{names[0]} has {len(a)} texts but {names[1]} has {len(b)}")
