"""Privacy, measured: memorised canaries, differentially private SGD by hand, its accountant, and
federated averaging (seed sections 1.2, 3.3, 8.3 and 9.4).

    text = insert_canaries(text, [("the code of the red door is 482915\\n", 16)], seed=0)
    nll = candidate_nll(model, prefix_ids, candidates)         # (N,) nats of each continuation
    rank, bits = exposure(nll_of_secret, nll_of_candidates)     # Carlini et al. (2019)
    grads = per_example_grads(model, x, y)                      # torch.func: vmap(grad(loss))
    clipped, norms = clip_per_example(grads, max_norm=1.0)
    losses = train_dp(model, x, y, steps=200, sample_rate=0.02, max_norm=1.0,
                      noise_multiplier=1.0)
    eps = dp_epsilon(sample_rate=0.02, noise_multiplier=1.0, steps=200, delta=1e-5)
    history = fedavg(model, [(x1, y1), (x2, y2)], rounds=10, local_steps=5)

One unit of privacy throughout: an example is one training window of `x` (N, T). DP-SGD
(Abadi et al., 2016) samples each example with probability `sample_rate` (Poisson sampling, as
Opacus does), clips each example's gradient to norm `max_norm`, adds Gaussian noise of standard
deviation noise_multiplier * max_norm to the sum, and divides by the expected batch size. The
accountant is Renyi DP of the sampled Gaussian mechanism (Mironov, Talwar and Zhang, 2019) at
integer orders, converted to (epsilon, delta) as Opacus' RDP accountant does (Balle et al.,
2020); tests/test_privacy.py holds both equal to Opacus.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from course_lib.validate import positive_int

# ====================================================================== canaries and exposure


def random_secret(n_digits: int, generator: torch.Generator) -> str:
    """A string of n_digits random decimal digits, e.g. '482915' (one draw from 10**n_digits)."""
    n_digits = positive_int(n_digits, "n_digits")
    return "".join(str(int(d)) for d in torch.randint(0, 10, (n_digits,), generator=generator))


def insert_canaries(text: str, canaries: Sequence[tuple[str, int]], seed: int = 0) -> str:
    """`text` with each (line, repeats) canary inserted `repeats` times, each copy at a random
    line boundary (seeded). A canary line ends with a newline."""
    lines = text.splitlines(keepends=True)
    copies = []
    for line, repeats in canaries:
        if not line.endswith("\n") or "\n" in line[:-1]:
            raise ValueError(f"a canary is one line ending in a newline, got {line!r}")
        copies += [line] * positive_int(repeats, "repeats")
    g = torch.Generator().manual_seed(seed)
    where = torch.randint(0, len(lines) + 1, (len(copies),), generator=g).tolist()
    for pos, line in sorted(zip(where, copies, strict=True), key=lambda p: p[0], reverse=True):
        lines.insert(pos, line)
    return "".join(lines)


@torch.no_grad()
def candidate_nll(
    model: nn.Module, prefix: Sequence[int], candidates: torch.Tensor, rows: int = 256
) -> torch.Tensor:
    """The negative log-likelihood (nats, summed over positions) of each candidate continuation
    after `prefix`: candidates (N, L) token ids -> (N,). Scored `rows` at a time."""
    if candidates.dim() != 2 or candidates.shape[1] == 0:
        raise ValueError(f"candidates must be (N, L) with L >= 1, got {tuple(candidates.shape)}")
    if len(prefix) == 0:
        raise ValueError("prefix is empty: the first candidate token needs a context")
    model.eval()
    head = torch.tensor(list(prefix), dtype=torch.long)
    out = []
    for i in range(0, len(candidates), rows):
        cand = candidates[i : i + rows]
        ids = torch.cat([head.expand(len(cand), -1), cand], dim=1)
        logp = F.log_softmax(model(ids[:, :-1]).float(), dim=-1)[:, len(prefix) - 1 :]
        out.append(-logp.gather(-1, cand[..., None])[..., 0].sum(dim=1))
    return torch.cat(out)


def exposure(secret_nll: float, candidates_nll: torch.Tensor) -> tuple[int, float]:
    """(rank, exposure in bits) of the true secret among random candidates (Carlini et al., 2019):
    rank 1 + the number of candidates the model finds more likely (lower NLL); exposure
    log2(N + 1) - log2(rank), N candidates. 0 bits: no more likely than a random candidate on
    average... up to log2(N + 1) bits: more likely than every candidate."""
    candidates_nll = torch.as_tensor(candidates_nll)
    if candidates_nll.dim() != 1 or len(candidates_nll) == 0:
        raise ValueError(
            f"candidates_nll must be a non-empty (N,) tensor, got {tuple(candidates_nll.shape)}"
        )
    rank = 1 + int((candidates_nll < secret_nll).sum())
    return rank, math.log2(len(candidates_nll) + 1) - math.log2(rank)


# ====================================================================== per-example gradients


class _Unchecked(nn.Module):
    """A course GPT's forward without its host-side id check (vmap cannot read values back):
    the same modules, the same function. Other models run as they are."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        if not all(hasattr(m, a) for a in ("tok_emb", "pos_emb", "blocks", "norm", "head")):
            return m(ids)
        x = m.tok_emb(ids)
        if m.pos_emb is not None:
            x = x + m.pos_emb(torch.arange(ids.shape[-1], device=ids.device))
        x = m.drop(x)
        for block in m.blocks:
            x = block(x, mask=None, cache=None, positions=None)
        return m.head(m.norm(x))


def example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One example's loss: mean cross-entropy over its positions; logits (T, V), y (T,)."""
    return F.cross_entropy(logits.float(), y)


def per_example_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The gradient of each example's loss (`example_loss`) with respect to every trainable
    parameter: x, y (B, T) -> {name: (B, *param.shape)}, by torch.func (vmap of grad). A tied
    parameter appears once, under its first name (as in model.named_parameters())."""
    return _per_example(model, x, y)[0]


def _per_example(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(per-example gradients, per-example losses (B,))."""
    if x.dim() != 2 or x.shape != y.shape or len(x) == 0:
        raise ValueError(
            f"x and y must both be (B, T), B >= 1, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    vocab = getattr(getattr(model, "tok_emb", None), "num_embeddings", None)
    if vocab is not None and (x.min() < 0 or x.max() >= vocab):
        raise ValueError(f"x must lie in [0, {vocab}), got {x.min()}..{x.max()}")
    wrapped = _Unchecked(model)
    params = {f"model.{k}": p.detach() for k, p in model.named_parameters() if p.requires_grad}

    def loss(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value = example_loss(functional_call(wrapped, p, (xi[None],))[0], yi)
        return value, value.detach()

    with warnings.catch_warnings():  # vmap's fallback for SDPA on the CPU: correct, slower
        warnings.filterwarnings("ignore", message="There is a performance drop")
        grads, losses = vmap(grad(loss, has_aux=True), in_dims=(None, 0, 0))(params, x, y)
    return {k.removeprefix("model."): g for k, g in grads.items()}, losses


def _check_max_norm(max_norm: float) -> float:
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float):
        raise TypeError(f"max_norm must be a number, got {type(max_norm).__name__}")
    if not max_norm > 0 or not math.isfinite(max_norm):
        raise ValueError(f"max_norm (the clip norm C) must be a positive number, got {max_norm}")
    return float(max_norm)


def clip_per_example(
    grads: dict[str, torch.Tensor], max_norm: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scale each example's whole gradient (all parameters together) to norm at most max_norm:
    g_i * min(1, C / ||g_i||). grads {name: (B, ...)} -> (clipped grads, norms (B,) before)."""
    max_norm = _check_max_norm(max_norm)
    if not grads:
        raise ValueError("grads is empty: pass {name: (B, ...)} per-example gradients")
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()
    factor = (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)  # (B,)
    clipped = {k: g * factor.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
    return clipped, norms


def noisy_mean(
    clipped: dict[str, torch.Tensor],
    max_norm: float,
    noise_multiplier: float,
    expected_batch: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """DP-SGD's gradient: (sum of the clipped per-example gradients + N(0, (sigma C)^2) noise in
    every coordinate) / expected_batch. The noise does not depend on the batch's real size."""
    max_norm = _check_max_norm(max_norm)
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    out = {}
    for k, g in clipped.items():
        noise = torch.randn(g.shape[1:], generator=generator) * (noise_multiplier * max_norm)
        out[k] = (g.sum(0) + noise.to(g.dtype)) / expected_batch
    return out


# ====================================================================== training


def train_dp(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    sample_rate: float,
    max_norm: float | None,
    noise_multiplier: float,
    lr: float = 3e-3,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    """DP-SGD with Adam on windows x, y (N, T): each step draws a Poisson sample (each window with
    probability sample_rate), takes per-example gradients, clips them to max_norm (None: no
    clipping), adds noise (noise_multiplier 0: none) and steps on the noisy mean over the expected
    batch size sample_rate * N. max_norm=None with noise_multiplier=0 is ordinary training on the
    same batches. on_step(step), if given, runs after every step (1, 2, ...). Returns each step's
    mean loss of the sampled windows."""
    steps = positive_int(steps, "steps")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if max_norm is None and noise_multiplier > 0:
        raise ValueError("noise needs a clip norm: the noise is scaled to max_norm")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    expected = sample_rate * len(x)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        rows = torch.nonzero(torch.rand(len(x), generator=g) < sample_rate)[:, 0]
        opt.zero_grad(set_to_none=True)
        if max_norm is None and noise_multiplier == 0:  # no privacy: the same gradient,
            per_loss = F.cross_entropy(  # sum_i grad loss_i / expected, in one backward pass
                model(x[rows]).float().transpose(1, 2), y[rows], reduction="none"
            ).mean(1)
            (per_loss.sum() / expected).backward()
        else:
            if len(rows) == 0:  # an empty Poisson sample: the step is noise alone
                grads = {k: torch.zeros(1, *p.shape) for k, p in params.items()}
                per_loss = torch.zeros(0)
            else:
                grads, per_loss = _per_example(model, x[rows], y[rows])
            if max_norm is not None:
                grads, _ = clip_per_example(grads, max_norm)
            noisy = noisy_mean(grads, max_norm or 1.0, noise_multiplier, expected, g)
            for k, p in params.items():
                p.grad = noisy[k]
        opt.step()
        losses.append(per_loss.mean().item() if len(per_loss) else float("nan"))
        if on_step is not None:
            on_step(step)  # it may evaluate the model: back to training mode after it
            model.train()
    model.eval()
    return losses


# ====================================================================== accounting


def _check_delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return float(delta)


ORDERS = tuple(range(2, 257))  # integer Renyi orders: the accountant takes the best of them


def rdp_sampled_gaussian(sample_rate: float, noise_multiplier: float, order: int) -> float:
    """Renyi DP of one step of the sampled Gaussian mechanism at integer order alpha >= 2
    (Mironov, Talwar and Zhang, 2019, section 3.3):
    (1 / (alpha - 1)) log sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)).
    q = 1 (no sampling) is the Gaussian mechanism's alpha / (2 sigma^2)."""
    q, sigma = float(sample_rate), float(noise_multiplier)
    if not 0 <= q <= 1:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    if sigma <= 0:
        raise ValueError(f"noise_multiplier must be > 0 for a finite epsilon, got {sigma}")
    alpha = int(order)
    if alpha != order or alpha < 2:
        raise ValueError(f"order must be an integer >= 2, got {order}")
    if q == 0:
        return 0.0
    if q == 1:
        return alpha / (2 * sigma**2)
    terms = [
        math.lgamma(alpha + 1)
        - math.lgamma(k + 1)
        - math.lgamma(alpha - k + 1)
        + (alpha - k) * math.log1p(-q)
        + k * math.log(q)
        + (k * k - k) / (2 * sigma**2)
        for k in range(alpha + 1)
    ]
    return torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0).item() / (alpha - 1)


def epsilon_from_rdp(
    rdp: Sequence[float], orders: Sequence[float], delta: float
) -> tuple[float, float]:
    """(epsilon, best order) for a target delta from RDP values at several orders, by the
    conversion of Balle et al. (2020, theorem 21) that Opacus uses:
    eps = rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha), minimised."""
    delta = _check_delta(delta)
    if len(rdp) != len(orders) or not orders:
        raise ValueError(
            f"rdp and orders must be non-empty and as long, got {len(rdp)}, {len(orders)}"
        )
    best = min(
        (r - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a), a)
        for r, a in zip(rdp, orders, strict=True)
    )
    return best[0], best[1]


def dp_epsilon(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    orders: Sequence[int] = ORDERS,
) -> float:
    """Epsilon of `steps` DP-SGD steps (sampled Gaussian mechanism, composed by adding RDP) at
    the target delta."""
    steps, delta = positive_int(steps, "steps"), _check_delta(delta)
    rdp = [steps * rdp_sampled_gaussian(sample_rate, noise_multiplier, a) for a in orders]
    return epsilon_from_rdp(rdp, orders, delta)[0]


# ====================================================================== federated averaging


def average_states(states: Sequence[dict], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts, entry by entry: sum_k w_k state_k / sum_k w_k."""
    if len(states) == 0:
        raise ValueError("states is empty: average at least one client's weights")
    if len(weights) != len(states) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be {len(states)} numbers >= 0 with a positive sum")
    total = float(sum(weights))
    return {
        k: sum(w / total * s[k].double() for s, w in zip(states, weights, strict=True)).to(v.dtype)
        for k, v in states[0].items()
    }


def local_train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> None:
    """`steps` Adam steps of ordinary training on windows x, y (N, T), batch_size rows each."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(x), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(x[rows]).flatten(0, 1), y[rows].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]],
    rounds: int,
    local_steps: int,
    *,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    evaluate: Callable[[nn.Module], float] | None = None,
) -> list[float]:
    """Federated averaging (McMahan et al., 2017): every round each client trains a copy of the
    global model on its own windows (x, y) for local_steps steps, and the server replaces the
    global weights by the clients' weights averaged in proportion to their number of windows.
    Trains `model` in place; returns evaluate(model) after every round (empty without one).
    Only weights travel; the windows stay with their client."""
    if len(clients) == 0:
        raise ValueError("clients is empty: federated averaging needs at least one client")
    rounds, local_steps = positive_int(rounds, "rounds"), positive_int(local_steps, "local_steps")
    batch_size = positive_int(batch_size, "batch_size")
    g = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(rounds):
        states = []
        for x, y in clients:
            local = copy.deepcopy(model)
            local_train(local, x, y, local_steps, batch_size, lr, g)
            states.append(local.state_dict())
        model.load_state_dict(average_states(states, [len(x) for x, _ in clients]))
        if evaluate is not None:
            history.append(evaluate(model))
    return history
