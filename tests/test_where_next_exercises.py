"""Notebook 15's answer key (course_lib.exercises.nb15): the reference passes, and wrong answers
written as a learner would write them are rejected with a hint that names the mistake."""

from __future__ import annotations

from types import SimpleNamespace

import torch.nn.functional as F
from exercise_helpers import learner

from course_lib import tokenizers as T
from course_lib.exercises import nb15


def test_exercise_bytes_per_token_wrong_answers_are_named():
    sig = "def bytes_per_token(encode, texts):"
    as_list = "texts = [texts] if isinstance(texts, str) else list(texts)\n"
    right, chars, mean, inverted, str_as_list = (
        nb15.bytes_per_token(learner(sig, body), quiet=True).message
        for body in [
            as_list + "return sum(len(t.encode('utf-8')) for t in texts) / "
            "sum(len(encode(t)) for t in texts)",
            as_list + "return sum(len(t) for t in texts) / sum(len(encode(t)) for t in texts)",
            as_list + "ratios = [len(t.encode('utf-8')) / len(encode(t)) for t in texts]\n"
            "return sum(ratios) / len(ratios)",
            as_list + "return sum(len(encode(t)) for t in texts) / "
            "sum(len(t.encode('utf-8')) for t in texts)",
            "return sum(len(t.encode('utf-8')) for t in texts) / "
            "sum(len(encode(t)) for t in texts)",
        ]
    )
    assert right == "bytes_per_token: all 6 cases pass. Well done!"
    assert "hint: this looks like characters instead of bytes" in chars
    assert "hint: this looks like the mean of the per-text ratios" in mean
    assert "hint: this looks like tokens per byte" in inverted
    assert "hint: this looks like a single string taken as a list of characters" in str_as_list


def test_exercise_image_to_patches_wrong_answers_are_named():
    sig = "def image_to_patches(images, patch):"
    shape = "b, c, h, w = images.shape\n"
    grid = shape + "x = images.reshape(b, c, h // patch, patch, w // patch, patch)\n"
    right, no_permute, channels_last, columns = (
        nb15.image_to_patches(learner(sig, body), quiet=True).message
        for body in [
            grid + "return x.permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * patch * patch)",
            shape + "return images.reshape(b, (h // patch) * (w // patch), c * patch * patch)",
            grid + "return x.permute(0, 2, 4, 3, 5, 1).reshape(b, -1, c * patch * patch)",
            grid + "return x.permute(0, 4, 2, 1, 3, 5).reshape(b, -1, c * patch * patch)",
        ]
    )
    assert right == "image_to_patches: all 5 cases pass. Well done!"
    assert "hint: this looks like a reshape without a permute" in no_permute
    assert "hint: this looks like channels last inside a patch" in channels_last
    assert "hint: this looks like patches taken column by column" in columns


def test_the_keys_accept_the_library_functions():
    def library_bytes_per_token(encode, texts):
        return T.bytes_per_token(SimpleNamespace(encode=encode), texts)

    def library_patches(images, patch):
        return F.unfold(images, kernel_size=patch, stride=patch).transpose(1, 2)

    assert nb15.bytes_per_token(library_bytes_per_token, quiet=True).passed
    assert nb15.image_to_patches(library_patches, quiet=True).passed


def test_a_stub_is_not_yet():
    def stub(*args):
        raise NotImplementedError("Exercise: replace this line with your code")

    assert nb15.bytes_per_token(stub, quiet=True).status == "not yet"
    assert nb15.image_to_patches(stub, quiet=True).status == "not yet"
