"""course_lib.optim against torch.optim: 100-step trajectories, schedules, bad input, exercises."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_helpers import learner
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from train_helpers import fit

from course_lib import optim as O
from course_lib.exercises import nb07

TRAJECTORY = dict(rtol=1e-5, atol=1e-6)


class Awkward(nn.Module):
    """Parameters of awkward shapes: odd widths, a single scalar-like weight, a bias-free layer,
    and a parameter that never gets a gradient (both implementations must skip it)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(7, 5)
        self.b = nn.Linear(5, 3, bias=False)
        self.scale = nn.Parameter(torch.ones(1))
        self.unused = nn.Parameter(torch.randn(2, 3))

    def forward(self, x):
        return self.scale * self.b(torch.tanh(self.a(x)))


def _run(make_optimizer, steps=100, batch=1, seed=0):
    torch.manual_seed(seed)
    model = Awkward()
    x, y = torch.randn(batch, 7), torch.randn(batch, 3)
    return fit(model, make_optimizer(model.parameters()), x, y, steps)


SETTINGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.01)),
    ("SGD", dict(lr=0.03, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4)),
    ("Adam", dict(lr=0.02, weight_decay=0.3)),
    ("Adam", dict(lr=0.01, betas=(0.0, 0.0))),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.0)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, betas=(0.8, 0.95), eps=1e-6)),
]


@pytest.mark.parametrize("name, kw", SETTINGS, ids=[f"{n}-{kw}" for n, kw in SETTINGS])
@pytest.mark.parametrize("batch", [1, 33])
def test_100_steps_equal_torch_optim(name, kw, batch):
    ours = _run(lambda ps: getattr(O, name)(ps, **kw), batch=batch)
    theirs = _run(lambda ps: getattr(torch.optim, name)(ps, **kw), batch=batch)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, **TRAJECTORY)


def test_the_trajectories_actually_move_and_differ():
    start = _run(lambda ps: O.SGD(ps, lr=0.1), steps=0)
    finals = {n: _run(lambda ps, n=n: getattr(O, n)(ps, lr=0.01)) for n in ("SGD", "Adam")}
    # parameters() order: scale, unused, a.weight, a.bias, b.weight
    assert not torch.allclose(finals["SGD"][2], start[2])
    assert not torch.allclose(finals["SGD"][2], finals["Adam"][2])
    for final in finals.values():
        torch.testing.assert_close(final[1], start[1], rtol=0, atol=0)  # unused: untouched


def test_adam_l2_and_adamw_decoupled_differ():
    adam = _run(lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.5))
    adamw = _run(lambda ps: O.AdamW(ps, lr=0.01, weight_decay=0.5))
    assert not torch.allclose(adam[0], adamw[0], rtol=1e-3)


def test_optimizer_with_a_schedule_equals_torch_with_lambda_lr():
    kw = dict(base_lr=0.01, warmup_steps=7, total_steps=60, min_lr=1e-3)

    def ours(params):
        return O.AdamW(params, lr=kw["base_lr"], weight_decay=0.1)

    torch.manual_seed(0)
    m1, m2 = Awkward(), Awkward()
    m2.load_state_dict(m1.state_dict())
    x, y = torch.randn(5, 7), torch.randn(5, 3)
    o1 = ours(m1.parameters())
    o2 = torch.optim.AdamW(m2.parameters(), lr=kw["base_lr"], weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(o2, lambda s: O.lr_at(s, **kw) / kw["base_lr"])
    for step in range(70):
        o1.set_lr(O.lr_at(step, **kw))
        for model, opt in ((m1, o1), (m2, o2)):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b, **TRAJECTORY)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 1, 4)])
@pytest.mark.parametrize("t", [1, 2, 10])
def test_adam_update_equals_torch_adam(shape, t):
    g = torch.Generator().manual_seed(t)
    p0 = torch.randn(shape, generator=g)
    grads = [torch.randn(shape, generator=g) for _ in range(t)]
    p = nn.Parameter(p0.clone())
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    ours, m, v = p0.clone(), torch.zeros(shape), torch.zeros(shape)
    for k, grad in enumerate(grads, start=1):
        p.grad = grad.clone()
        opt.step()
        ours, m, v = O.adam_update(ours, grad, m, v, k, lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    torch.testing.assert_close(ours, p.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m, opt.state[p]["exp_avg"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v, opt.state[p]["exp_avg_sq"], rtol=1e-5, atol=1e-6)


def test_adam_first_step_is_lr_times_sign():
    p = torch.tensor([1.0, -2.0, 3.0])
    g = torch.tensor([5.0, -1e-3, 0.2])
    new, _, _ = O.adam_update(p, g, torch.zeros(3), torch.zeros(3), 1, lr=0.1)
    torch.testing.assert_close(new - p, -0.1 * torch.sign(g), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- schedules


def _closed_form(s, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if s < warmup_steps:
        return base_lr * (s + 1) / warmup_steps
    if s >= total_steps:
        return min_lr
    frac = (s - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * frac)) / 2


@pytest.mark.parametrize(
    "warmup, total, min_lr",
    [(0, 1, 0.0), (0, 13, 1e-4), (1, 2, 0.0), (10, 10, 0.0), (7, 101, 3e-5)],
)
def test_lr_at_equals_closed_form(warmup, total, min_lr):
    for s in range(total + 5):
        got = O.lr_at(s, base_lr=3e-3, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
        assert math.isclose(got, _closed_form(s, 3e-3, warmup, total, min_lr), rel_tol=1e-12)


@pytest.mark.parametrize("warmup, total", [(1, 50), (5, 50), (20, 200), (3, 4)])
def test_lr_at_equals_torch_linear_then_cosine(warmup, total):
    base, min_lr = 1e-3, 1e-5
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    warm = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 0)
    )
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    for s in range(total):
        ours = O.lr_at(s, base_lr=base, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
        assert math.isclose(ours, opt.param_groups[0]["lr"], rel_tol=1e-5, abs_tol=1e-12), s
        opt.step()
        sched.step()


@given(
    step=st.integers(0, 500),
    warmup=st.integers(0, 100),
    extra=st.integers(1, 300),
    base=st.floats(1e-6, 1.0),
    ratio=st.floats(0.0, 1.0),
)
def test_lr_at_stays_between_min_and_base(step, warmup, extra, base, ratio):
    lr = O.lr_at(
        step, base_lr=base, warmup_steps=warmup, total_steps=warmup + extra, min_lr=base * ratio
    )
    assert 0 < lr <= base * (1 + 1e-12) or (lr == base * ratio == 0.0)
    if step >= warmup:
        assert lr >= base * ratio * (1 - 1e-12)


# --------------------------------------------------------------------------- bad input

W = [nn.Parameter(torch.zeros(2))]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: O.SGD(W, lr=-0.1), ValueError, "lr must be >= 0"),
        (lambda: O.SGD(W, lr=float("nan")), ValueError, "lr must be finite"),
        (lambda: O.SGD(W, lr="0.1"), TypeError, "lr must be a number"),
        (lambda: O.SGD(W, lr=0.1, momentum=-0.5), ValueError, "momentum must be >= 0"),
        (lambda: O.SGD(W, lr=0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0"),
        (lambda: O.SGD(W, lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
        (
            lambda: O.SGD(W, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            "dampening = 0",
        ),
        (lambda: O.Adam(W, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
        (lambda: O.Adam(W, betas=(-0.1, 0.9)), ValueError, r"betas\[0\] must be in \[0, 1\)"),
        (lambda: O.Adam(W, betas=(0.9,)), ValueError, "betas must be a pair"),
        (lambda: O.AdamW(W, eps=0.0), ValueError, "eps must be > 0"),
        (lambda: O.AdamW(W, eps=-1e-8), ValueError, "eps must be > 0"),
        (lambda: O.Adam([], lr=0.1), ValueError, "params is empty"),
        (lambda: O.Adam(W[0], lr=0.1), TypeError, "iterable of tensors"),
        (lambda: O.Adam([torch.zeros(2, dtype=torch.long)]), TypeError, "floating point"),
        (lambda: O.SGD(W, lr=0.1).set_lr(-1.0), ValueError, "lr must be >= 0"),
        (
            lambda: O.lr_at(0, base_lr=1e-3, warmup_steps=500, total_steps=100),
            ValueError,
            r"warmup_steps \(500\) must not exceed total_steps \(100\)",
        ),
        (
            lambda: O.lr_at(-1, base_lr=1e-3, warmup_steps=5, total_steps=100),
            ValueError,
            "step must be >= 0",
        ),
        (
            lambda: O.lr_at(0, base_lr=1e-3, warmup_steps=5, total_steps=0),
            ValueError,
            "total_steps must be >= 1",
        ),
        (
            lambda: O.lr_at(1.5, base_lr=1e-3, warmup_steps=5, total_steps=10),
            TypeError,
            "step must be an int",
        ),
        (
            lambda: O.lr_at(0, base_lr=1e-3, warmup_steps=5, total_steps=10, min_lr=1e-2),
            ValueError,
            "min_lr",
        ),
        (
            lambda: O.adam_update(
                torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2), 1
            ),
            ValueError,
            r"grad has shape \(3,\) but p has \(2,\)",
        ),
        (
            lambda: O.adam_update(
                torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), 0
            ),
            ValueError,
            "t must be the step number",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


# --------------------------------------------------------------------------- exercises


ADAM = "def adam_step(p, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):"
SCHEDULE = "def warmup_cosine(step, base_lr, warmup_steps, total_steps):"


@pytest.fixture(scope="module")
def verdicts():
    # the answer key (course_lib.exercises.nb07) that notebook 07's check cells call
    keys = {"adam_step": (nb07.adam_step, ADAM), "warmup_cosine": (nb07.warmup_cosine, SCHEDULE)}
    bodies = {
        "adam_step": [
            "m = beta1 * m + (1 - beta1) * grad\n"
            "v = beta2 * v + (1 - beta2) * grad**2\n"
            "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\n"
            "return p - lr * m_hat / (v_hat.sqrt() + eps), m, v",
            "raise NotImplementedError",
            "m = beta1 * m + (1 - beta1) * grad\n"
            "v = beta2 * v + (1 - beta2) * grad**2\n"
            "return p - lr * m / (v.sqrt() + eps), m, v",
            "m = beta1 * m + (1 - beta1) * grad\n"
            "v = beta2 * v + (1 - beta2) * grad**2\n"
            "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\n"
            "return p - lr * m_hat / (v_hat + eps).sqrt(), m, v",
            "m = beta1 * m + (1 - beta1) * grad\n"
            "v = beta2 * v + (1 - beta2) * grad.abs()\n"
            "m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)\n"
            "return p - lr * m_hat / (v_hat.sqrt() + eps), m, v",
        ],
        "warmup_cosine": [
            "if step < warmup_steps:\n"
            "    return base_lr * (step + 1) / warmup_steps\n"
            "if step >= total_steps:\n"
            "    return 0.0\n"
            "x = (step - warmup_steps) / (total_steps - warmup_steps)\n"
            "return 0.5 * base_lr * (1 + math.cos(math.pi * x))",
            "raise NotImplementedError",
            "if step < warmup_steps:\n"
            "    return base_lr * step / warmup_steps\n"
            "if step >= total_steps:\n"
            "    return 0.0\n"
            "x = (step - warmup_steps) / (total_steps - warmup_steps)\n"
            "return 0.5 * base_lr * (1 + math.cos(math.pi * x))",
            "if step < warmup_steps:\n"
            "    return base_lr * (step + 1) / warmup_steps\n"
            "x = min(step, total_steps) / total_steps\n"
            "return 0.5 * base_lr * (1 + math.cos(math.pi * x))",
            "if step < warmup_steps:\n"
            "    return base_lr * (step + 1) / warmup_steps\n"
            "x = (min(step, total_steps) - warmup_steps) / (total_steps - warmup_steps)\n"
            "return 0.5 * base_lr * (1 + math.cos(2 * math.pi * x))",
        ],
    }
    return {
        name: [keys[name][0](learner(keys[name][1], b), quiet=True).message for b in tried]
        for name, tried in bodies.items()
    }


def test_exercise_adam_step_wrong_answers_are_named(verdicts):
    right, stub, no_correction, eps_inside, abs_grad = verdicts["adam_step"]
    assert right == "adam_step: all 4 cases pass. Well done!"
    assert stub.startswith("adam_step: not yet.")
    assert "hint: this looks like no bias correction" in no_correction
    assert "hint: this looks like eps inside the square root" in eps_inside
    assert "hint: this looks like v from |g| instead of g**2" in abs_grad


def test_exercise_warmup_cosine_wrong_answers_are_named(verdicts):
    right, stub, from_zero, all_steps, full = verdicts["warmup_cosine"]
    assert right == "warmup_cosine: all 7 cases pass. Well done!"
    assert stub.startswith("warmup_cosine: not yet.")
    assert "hint: this looks like a warm-up that starts at 0" in from_zero
    assert "hint: this looks like cosine over all steps, warm-up included" in all_steps
    assert "hint: this looks like a full cosine period" in full
