"""Notebook 03's exercises: the causal mask, scaled scores, the head split, and a whole causal
self-attention module checked against `course_lib.attention.MultiHeadAttention`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from course_lib import attention as A
from course_lib.check import Verdict, case, check, mistake


def make_causal_mask(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(t) -> (t, t) boolean, True where query i may attend to key j (j <= i)."""
    return check(
        fn,
        reference=A.causal_mask,
        cases=[case(4), case(1, label="one token"), case(7, label="odd length")],
        mistakes=[
            mistake(
                "the diagonal left out",
                "a token may attend to itself: keep the diagonal (tril(), not tril(-1))",
                lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1),
            ),
            mistake(
                "the upper triangle",
                "row i is the query: it may see keys 0..i, the lower triangle; triu lets every "
                "token see the future",
                lambda t: torch.ones(t, t, dtype=torch.bool).triu(),
            ),
            mistake(
                "the mask inverted",
                "True must mean 'may attend' here; True = 'blocked' is nn.MultiheadAttention's "
                "convention, the opposite one",
                lambda t: ~torch.ones(t, t, dtype=torch.bool).tril(),
            ),
        ],
        quiet=quiet,
    )


def scaled_scores(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(q (..., T_q, d), k (..., T_k, d)) -> (..., T_q, T_k) scores q k^T / sqrt(d)."""
    g = torch.Generator().manual_seed(4)
    return check(
        fn,
        reference=lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]),
        cases=[
            case(
                torch.randn(2, 3, 8, generator=g),
                torch.randn(2, 5, 8, generator=g),
                label="T_q=3, T_k=5, d=8",
            ),
            case(
                torch.randn(1, 2, 4, 16, generator=g),
                torch.randn(1, 2, 4, 16, generator=g),
                label="with a head axis",
            ),
            case(
                torch.randn(1, 1, 9, generator=g),
                torch.randn(1, 6, 9, generator=g),
                label="one query",
            ),
        ],
        mistakes=[
            mistake(
                "no scaling",
                "divide by sqrt(d): without it the softmax saturates (section 2)",
                lambda q, k: q @ k.transpose(-2, -1),
            ),
            mistake(
                "dividing by d",
                "the standard deviation of q.k is sqrt(d), not d",
                lambda q, k: q @ k.transpose(-2, -1) / q.shape[-1],
            ),
            mistake(
                "scaling by the number of keys",
                "d is the width of a query, q.shape[-1], not the number of keys k.shape[-2]",
                lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2]),
            ),
        ],
        quiet=quiet,
    )


def to_heads(fn: Callable, *, quiet: bool = False) -> Verdict:
    """fn(x (B, T, D), n_heads) -> (B, H, T, D // H), against `A.split_heads`."""
    g = torch.Generator().manual_seed(6)
    return check(
        fn,
        reference=A.split_heads,
        cases=[
            case(torch.randn(2, 3, 8, generator=g), 2),
            case(torch.randn(1, 5, 12, generator=g), 3, label="batch 1, odd length"),
            case(torch.randn(1, 1, 4, generator=g), 4, label="one token, width 1 per head"),
            case(torch.randn(2, 3, 6, generator=g), 1, label="one head"),
        ],
        mistakes=[
            mistake(
                "a view without the transpose",
                "view(B, H, T, D // H) cuts the flat memory into heads of whole tokens, not of "
                "columns: view (B, T, H, D // H), then transpose(1, 2)",
                lambda x, h: x.view(x.shape[0], h, x.shape[1], x.shape[2] // h),
            ),
            mistake(
                "interleaved heads",
                "view(B, T, D // H, H) deals the columns out to the heads like cards; head h "
                "must own one contiguous block of columns",
                lambda x, h: x.view(*x.shape[:2], x.shape[2] // h, h).permute(0, 3, 1, 2),
            ),
        ],
        quiet=quiet,
    )


# --------------------------------------------------------------------------- the whole module
# The learner's class CausalSelfAttention(d_model, n_heads) has the parameters of
# A.MultiHeadAttention, under the same names: q_proj, k_proj, v_proj and out_proj, each an
# nn.Linear(d_model, d_model) with a bias. The key draws one set of weights per size, copies it
# into the library's module and into the learner's, and compares the output and the gradients
# (of the input and of every weight) after a backward pass with one random upstream gradient.

PARAMETERS = tuple(
    f"{layer}.{kind}"
    for layer in ("q_proj", "k_proj", "v_proj", "out_proj")
    for kind in ("weight", "bias")
)
PARTS = ("output", "x.grad") + tuple(f"{name}.grad" for name in PARAMETERS)


def _weights_and_upstream(d_model: int, shape: torch.Size, seed: int) -> tuple[dict, torch.Tensor]:
    """The case's weights {name: tensor} and the upstream gradient (shape of the output)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"weight": (d_model, d_model), "bias": (d_model,)}
    weights = {
        name: torch.randn(shapes[name.split(".")[1]], generator=g) / math.sqrt(d_model)
        for name in PARAMETERS
    }
    return weights, torch.randn(shape, generator=g)


def _load(module: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy `weights` into the module's parameters of the same names (buffers are left alone)."""
    params = dict(module.named_parameters())
    if sorted(params) != sorted(PARAMETERS):
        raise ValueError(
            f"the module's parameters are {sorted(params)}; name them as MultiHeadAttention "
            "does: q_proj, k_proj, v_proj and out_proj, each an nn.Linear(d_model, d_model) "
            "with a bias, and no others, so that the key can copy the library's weights in"
        )
    with torch.no_grad():
        for name, w in weights.items():
            if params[name].shape != w.shape:
                raise ValueError(
                    f"{name} has shape {tuple(params[name].shape)}, expected {tuple(w.shape)}: "
                    "each projection is nn.Linear(d_model, d_model)"
                )
            params[name].copy_(w)


class _Run:
    """One module class on the cases: part="output" is the forward pass, (B, T, d_model); any
    other part is one gradient (of x or of a weight) after y.backward(upstream), from one
    forward and backward pass per size, kept for the other gradients of that size.

    For an error in the learner's forward, `check` quotes the learner's own line: it looks for
    the frame of `__code__`, here the code of the class's forward."""

    def __init__(self, build: Callable[[int, int], nn.Module], library: bool = False):
        self.build, self.library = build, library
        self.grads: dict[tuple, dict[str, torch.Tensor]] = {}
        forward = getattr(build, "forward", None)
        if getattr(forward, "__code__", None) is not None and not library:
            self.__code__ = forward.__code__

    def _forward(self, x: torch.Tensor, n_heads: int, seed: int) -> tuple:
        """(module, x as a leaf that requires grad, y = module(x), the upstream gradient)."""
        d_model = x.shape[-1]
        with torch.random.fork_rng(devices=[]):  # nn.Linear's init must not move the global RNG
            module = self.build(d_model, n_heads)
        weights, upstream = _weights_and_upstream(d_model, x.shape, seed)
        _load(module, weights)
        x = x.detach().clone().requires_grad_()
        y = module(x, is_causal=True) if self.library else module(x)  # (B, T, d_model)
        return module, x, y, upstream

    def __call__(self, x: torch.Tensor, *, n_heads: int, part: str, seed: int) -> torch.Tensor:
        if part == "output":
            y = self._forward(x, n_heads, seed)[2]
            return y.detach() if isinstance(y, torch.Tensor) else y
        key = (seed, n_heads, tuple(x.shape))
        if key not in self.grads:
            module, x, y, upstream = self._forward(x, n_heads, seed)
            y.backward(upstream)
            grads = {"x.grad": x.grad}
            grads |= {f"{n}.grad": p.grad for n, p in module.named_parameters()}
            self.grads[key] = grads
        grad = self.grads[key][part]
        if grad is None:
            raise ValueError(
                f"no gradient reached {part.removesuffix('.grad')}: use it in forward, outside "
                "torch.no_grad() and without .detach()"
            )
        return grad.clone()


class _Buggy(nn.Module):
    """Causal self-attention with one named bug (or none: bug=""), for the mistakes below."""

    def __init__(self, d_model: int, n_heads: int, bug: str = ""):
        super().__init__()
        self.n_heads, self.bug = n_heads, bug
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h, bug = self.n_heads, self.bug
        dh = d // h

        def split(y):  # (B, T, D) -> (B, H, T, dh)
            if bug == "split":
                return y.view(b, h, t, dh)
            return y.view(b, t, h, dh).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scale = {"unscaled": 1.0, "d_model": math.sqrt(d)}.get(bug, math.sqrt(dh))
        scores = q @ k.transpose(-2, -1) / scale  # (B, H, T, T)
        keep = torch.ones(t, t, dtype=torch.bool)
        keep = {"diagonal": keep.tril(-1), "upper": keep.triu()}.get(bug, keep.tril())
        if bug != "no mask":
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=-2 if bug == "axis" else -1)
        out = weights @ v  # (B, H, T, dh)
        if bug == "merge":
            out = out.reshape(b, t, d)
        elif bug == "interleave":
            out = out.permute(0, 2, 3, 1).reshape(b, t, d)
        else:
            out = out.transpose(1, 2).reshape(b, t, d)
        return self.out_proj(out)


def _with_bug(bug: str) -> Callable:
    return _Run(lambda d, h: _Buggy(d, h, bug))


# (batch, length, d_model, heads, what the sizes test): batch 1, odd lengths, 1 to 6 heads
SIZES = [
    (2, 5, 12, 3, "2 sequences of 5, 3 heads"),
    (1, 7, 8, 1, "batch 1, length 7, one head"),
    (3, 9, 16, 4, "3 sequences of 9, 4 heads"),
    (2, 3, 10, 2, "2 heads of odd width 5"),
    (1, 1, 12, 6, "one token, 6 heads"),
]


def _cases() -> list:
    g = torch.Generator().manual_seed(3)
    inputs = [
        (torch.randn(b, t, d, generator=g), h, label, 100 + i)
        for i, (b, t, d, h, label) in enumerate(SIZES)
    ]
    return [  # the forward pass on every size first, then each gradient on every size
        case(x, n_heads=h, part=part, seed=seed, label=f"{label}: {part}")
        for part in PARTS
        for x, h, label, seed in inputs
    ]


def causal_self_attention(cls: type, *, quiet: bool = False) -> Verdict:
    """cls(d_model, n_heads): an nn.Module whose forward(x (B, T, d_model)) -> (B, T, d_model)
    is causal self-attention, with the parameters of `A.MultiHeadAttention` (q_proj, k_proj,
    v_proj, out_proj). Equal to `MultiHeadAttention(d_model, n_heads)(x, is_causal=True)` with
    the same weights: the output and the gradients of x and of every weight (rtol 1e-5,
    atol 1e-6)."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(
            "cls must be your nn.Module class itself (CausalSelfAttention, not an instance), "
            f"got {type(cls).__name__}"
        )

    return check(
        _Run(cls),
        reference=_Run(A.MultiHeadAttention, library=True),
        cases=_cases(),
        name=cls.__name__,
        mistakes=[
            mistake(
                "scores not scaled",
                "divide the scores by sqrt(d_head) before the mask and the softmax (section 2)",
                _with_bug("unscaled"),
            ),
            mistake(
                "scores scaled by sqrt(d_model)",
                "each head's dot products are sums of d_head = d_model / n_heads terms: divide "
                "by sqrt(d_head), not sqrt(d_model)",
                _with_bug("d_model"),
            ),
            mistake(
                "no causal mask",
                "query i must not see keys after i: fill the scores above the diagonal with "
                "-inf before the softmax",
                _with_bug("no mask"),
            ),
            mistake(
                "the diagonal masked too",
                "a token may attend to itself: keep the diagonal (tril(), not tril(-1)); "
                "otherwise the first token has nothing left to attend to and gives nan",
                _with_bug("diagonal"),
            ),
            mistake(
                "the mask the wrong way round",
                "row i is the query: keep keys 0..i, the lower triangle, and hide the upper one",
                _with_bug("upper"),
            ),
            mistake(
                "the softmax over the queries",
                "each query's weights sum to 1 over the keys: softmax over the last axis, dim=-1",
                _with_bug("axis"),
            ),
            mistake(
                "heads split without the transpose",
                "view (B, T, H, d_head), then transpose(1, 2); view(B, H, T, d_head) gives a "
                "head whole tokens instead of a block of columns",
                _with_bug("split"),
            ),
            mistake(
                "heads merged without the transpose",
                "(B, H, T, d_head): transpose(1, 2) to (B, T, H, d_head) first, then reshape "
                "to (B, T, d_model); a plain reshape mixes different tokens' outputs",
                _with_bug("merge"),
            ),
            mistake(
                "heads merged in the wrong order",
                "head h's output goes back to columns h * d_head to (h + 1) * d_head - 1, as "
                "the split took them: transpose(1, 2), not permute(0, 2, 3, 1), before reshape",
                _with_bug("interleave"),
            ),
        ],
        quiet=quiet,
    )
