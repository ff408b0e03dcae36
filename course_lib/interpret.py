"""Looking inside a trained GPT: attention maps, linear probes and the logit lens (seed sections
1.2, 3.3 and 8.3: "models are black boxes").

    maps = attention_maps(model, ids)          # (layers, heads, T, T) for one sequence
    states = hidden_states(model, ids)         # [embeddings, after block 1, ..., after block L]
    lens = logit_lens(model, ids)              # (layers + 1, B, T, V): each state through the head
    labels = inside_brackets(text)             # (len(text),) bool: inside a [stage direction]
    probe = train_probe(features, labels)      # logistic regression on frozen features
    accuracy = probe_accuracy(probe, features, labels)

Each method answers a narrower question than its pictures suggest: attention weights say where a
head reads from, not what it reads or whether it matters; a probe says a property is linearly
decodable from a layer, not that the model uses it; the logit lens says what a layer's state
would predict if the remaining layers did nothing, which they never do.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.transformer import GPT
from course_lib.validate import positive_int


def _check_gpt(model: nn.Module) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a course_lib.transformer.GPT, got {type(model).__name__}")


def _check_ids(ids: torch.Tensor) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] == 0:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a (batch, seq) tensor of token ids, got {shape}")


@torch.no_grad()
def attention_maps(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The attention weights of every layer and head for one sequence ids (1, T):
    (layers, heads, T, T), row t the weights position t gives to positions 0..t (each row sums
    to 1). The fast kernel does not return weights, so a copy on the hand-written path
    (fast=False, the same weights) computes them."""
    _check_gpt(model)
    _check_ids(ids)
    if ids.shape[0] != 1:
        raise ValueError(f"ids must hold one sequence (1, T), got {tuple(ids.shape)}")
    slow = GPT(dataclasses.replace(model.config, fast=False))
    slow.load_state_dict(model.state_dict())
    slow.eval()(ids)
    return torch.stack([block.self_attn.last_weights[0] for block in slow.blocks])


@torch.no_grad()
def hidden_states(model: nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    """The residual stream of ids (B, T): L + 1 tensors (B, T, d_model), the input of the first
    block (token embeddings, plus position embeddings where the model has them) and the output
    of each of the L blocks."""
    _check_gpt(model)
    _check_ids(ids)
    states: list[torch.Tensor] = []
    hooks = [model.blocks[0].register_forward_pre_hook(lambda m, args: states.append(args[0]))]
    hooks += [b.register_forward_hook(lambda m, a, out: states.append(out)) for b in model.blocks]
    try:
        model.eval()(ids)
    finally:
        for h in hooks:
            h.remove()
    return states


@torch.no_grad()
def logit_lens(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Each residual-stream state put through the model's final norm and output head, as if the
    blocks after it were skipped (nostalgebraist, 2020): (L + 1, B, T, V) logits. The last entry
    is the model's own output."""
    return torch.stack([model.head(model.norm(h)) for h in hidden_states(model, ids)])


@torch.no_grad()
def lens_losses(model: nn.Module, ids: torch.Tensor) -> list[float]:
    """The next-token loss (nats) of each logit-lens entry on ids (B, T): L + 1 numbers, the last
    the model's own loss on ids."""
    lens = logit_lens(model, ids)[:, :, :-1]
    target = ids[:, 1:].flatten()
    return [F.cross_entropy(lg.flatten(0, 1), target).item() for lg in lens]


def inside_brackets(text: str, open_: str = "[", close: str = "]") -> torch.Tensor:
    """(len(text),) bool: True for the characters strictly between an opening bracket and its
    closing one (the plays' stage directions, "[Exit SELEUCUS.]"); the brackets are False."""
    labels, inside = [], False
    for ch in text:
        if ch == open_:
            inside = True
            labels.append(False)
        elif ch == close:
            inside = False
            labels.append(False)
        else:
            labels.append(inside)
    return torch.tensor(labels, dtype=torch.bool)


def balanced_sample(
    labels: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Indices of an equal number of True and False labels among the candidate positions
    (a bool mask), all of the rarer class and as many of the other, drawn at random; sorted."""
    if labels.shape != candidates.shape or labels.dim() != 1:
        raise ValueError(
            f"labels and candidates must be (N,) masks, got {tuple(labels.shape)}, "
            f"{tuple(candidates.shape)}"
        )
    pos = torch.nonzero(candidates & labels)[:, 0]
    neg = torch.nonzero(candidates & ~labels)[:, 0]
    n = min(len(pos), len(neg))
    if n == 0:
        raise ValueError("the candidates hold no example of one of the two classes")
    pick = [c[torch.randperm(len(c), generator=generator)[:n]] for c in (pos, neg)]
    return torch.cat(pick).sort().values


def train_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 200,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> nn.Linear:
    """A linear probe: logistic regression from features (N, D) to bool labels (N,), trained
    full-batch with L-BFGS on standardised features (their mean and spread become part of the
    returned layer) with an L2 penalty weight_decay. Returns nn.Linear(D, 1): logit > 0 means
    True."""
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be (N, D) and labels (N,), got {tuple(features.shape)}, "
            f"{tuple(labels.shape)}"
        )
    if len(labels.unique()) != 2:
        raise ValueError("labels must hold both classes for a probe to separate them")
    steps = positive_int(steps, "steps")
    x = features.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z, y = (x - mean) / std, labels.double()
    torch.manual_seed(seed)
    w = torch.zeros(x.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ w + b, y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    probe = nn.Linear(x.shape[1], 1)
    with torch.no_grad():  # fold the standardisation into the layer: (x - mean) / std @ w + b
        probe.weight.copy_((w / std)[None].float())
        probe.bias.copy_((b - (mean / std) @ w).float()[None])
    return probe


@torch.no_grad()
def probe_accuracy(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of labels (N,) the probe gets right from features (N, D)."""
    if features.dim() != 2 or labels.shape != features.shape[:1] or len(labels) == 0:
        raise ValueError(
            f"features must be (N, D) and labels (N,), N >= 1, got {tuple(features.shape)}, "
            f"{tuple(labels.shape)}"
        )
    guess = probe(features.float())[:, 0] > 0
    return (guess == labels.bool()).float().mean().item()
