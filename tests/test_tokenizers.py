"""course_lib.tokenizers."""

import pytest

from course_lib import tokenizers


def test_split_words():
    assert tokenizers.split_words("O'er the hills, 'tis 3 miles!") == [
        "o'er",
        "the",
        "hills",
        "tis",
        "miles",
    ]
    assert tokenizers.split_words("Hamlet SPEAKS", lower=False) == ["Hamlet", "SPEAKS"]
    assert tokenizers.split_words("") == []
    with pytest.raises(TypeError, match="text must be a string"):
        tokenizers.split_words(None)
