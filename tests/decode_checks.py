"""What every tokenizer's decode must accept and refuse (used by the tokenizer tests)."""

import numpy as np
import pytest
import torch


def assert_decode_takes_integer_types(decode, ids, expected) -> None:
    """Python, NumPy and tensor integers all decode to the same text."""
    assert decode(ids) == expected
    assert decode(np.array(ids, dtype=np.int64)) == expected  # NumPy integers
    assert decode([np.int32(i) for i in ids]) == expected
    assert decode(torch.tensor(ids)) == expected  # a 1-d tensor: its items are 0-d tensors
    assert decode([torch.tensor(i) for i in ids]) == expected
    assert decode(torch.tensor(ids, dtype=torch.int32)) == expected


def assert_decode_refuses_non_integers(decode, ids) -> None:
    """A float, str, None or bool id: TypeError naming it; 2-d or unknown ids: ValueError."""
    # bool is refused: True is a mistake (a mask, a comparison), not token 1
    for bad, shown in [
        (1.0, "float 1.0"),
        ("a", "str 'a'"),
        (None, "NoneType None"),
        (True, "bool True"),
        (np.float64(2.0), "float64"),
        (torch.tensor(2.0), "Tensor"),
        (torch.tensor(True), "bool"),
    ]:
        with pytest.raises(TypeError, match=rf"ids\[1\] must be an integer, got .*{shown}"):
            decode([ids[0], bad])
    with pytest.raises(ValueError, match="ids must be one-dimensional, got shape \\(1, 2\\)"):
        decode(torch.tensor([ids[:2]]))
    with pytest.raises(ValueError, match="is not in this vocabulary"):
        decode([np.int64(10_000)])
