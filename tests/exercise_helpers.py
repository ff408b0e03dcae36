"""A learner's answer to an exercise, as a function: for the answer key's wrong-answer tests."""

import math

import torch
import torch.nn.functional as F

NAMESPACE = {"math": math, "torch": torch, "F": F}


def learner(signature: str, body: str):
    """`learner("def f(x):", "return x + 1")`: the function a learner who wrote `body` has."""
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    scope = dict(NAMESPACE)
    exec(f"{signature}\n{lines}", scope)  # a test's own source, not user input
    name = signature.split()[1].split("(")[0]
    return scope[name]
