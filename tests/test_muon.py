"""course_lib.optim's Muon: equal to torch.optim.Muon bit for bit (bfloat16 Newton-Schulz), equal
to the mathematical definition in float64, its pieces, Combined, bad input, the exercise."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import learner
from torch import nn
from train_helpers import fit

from course_lib import optim as O
from course_lib import train_config
from course_lib.exercises import nb07

TRAJECTORY = dict(rtol=1e-5, atol=1e-6)


class Matrices(nn.Module):
    """Only matrices (Muon's parameters): tall (9, 7), wide (4, 9), a (3, 4) head, and one that
    never gets a gradient (both implementations must skip it)."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.a = nn.Linear(7, 9, bias=False, dtype=dtype)
        self.b = nn.Linear(9, 4, bias=False, dtype=dtype)
        self.c = nn.Linear(4, 3, bias=False, dtype=dtype)
        self.unused = nn.Parameter(torch.randn(2, 3, dtype=dtype))

    def forward(self, x):
        return self.c(torch.tanh(self.b(torch.tanh(self.a(x)))))


def _run(make_optimizer, steps=100, batch=33, dtype=torch.float32, model_cls=Matrices):
    torch.manual_seed(0)
    model = model_cls(dtype=dtype)
    x, y = torch.randn(batch, 7, dtype=dtype), torch.randn(batch, 3, dtype=dtype)
    return fit(model, make_optimizer(model), x, y, steps)


SETTINGS = [
    dict(),
    dict(lr=0.02, weight_decay=0.0),
    dict(lr=0.02, momentum=0.9, nesterov=False),
    dict(lr=0.01, adjust_lr="match_rms_adamw"),
    dict(lr=0.05, ns_steps=3, weight_decay=0.3),
]


def _torch_kwargs(kw: dict) -> dict:
    out = dict(kw)
    if "adjust_lr" in out:
        out["adjust_lr_fn"] = out.pop("adjust_lr")
    return out


@pytest.mark.parametrize("kw", SETTINGS, ids=[str(kw) for kw in SETTINGS])
@pytest.mark.parametrize("batch", [1, 33])
def test_bfloat16_mode_equals_torch_optim_muon_bit_for_bit_after_100_steps(kw, batch):
    ours = _run(lambda m: O.Muon(m.parameters(), **kw), batch=batch)
    theirs = _run(lambda m: O.torch_muon()(m.parameters(), **_torch_kwargs(kw)), batch=batch)
    start = _run(lambda m: O.Muon(m.parameters()), steps=0)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    # parameters(): unused, a, b, c; the one without a gradient stays as it was
    assert torch.equal(ours[0], start[0]) and not torch.equal(ours[1], start[1])


def _ns_by_svd(u: torch.Tensor, steps=5, coefficients=O.NS_COEFFICIENTS) -> torch.Tensor:
    """The definition: u / ||u||_F = U S V^T, each singular value through the polynomial."""
    U, S, Vh = torch.linalg.svd(u / u.norm(), full_matrices=False)
    a, b, c = coefficients
    for _ in range(steps):
        S = a * S + b * S**3 + c * S**5
    return U @ torch.diag(S) @ Vh


class TextbookMuon:
    """Muon as the papers write it: B = mu B + g, u = g + mu B (Nesterov), O = NS(u) via the
    SVD, p <- (1 - lr wd) p - lr sqrt(max(1, rows / cols)) O. (torch keeps (1 - mu) B; the
    normalisation before Newton-Schulz removes that constant factor.)"""

    def __init__(self, params, lr, weight_decay, momentum=0.95):
        self.params, self.lr, self.wd, self.mu = list(params), lr, weight_decay, momentum
        self.buffers = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            self.buffers[i] = self.mu * self.buffers[i] + p.grad
            u = p.grad + self.mu * self.buffers[i]
            p.mul_(1 - self.lr * self.wd)
            p.sub_(self.lr * max(1, p.shape[0] / p.shape[1]) ** 0.5 * _ns_by_svd(u))


def test_float64_mode_equals_the_mathematical_definition_after_100_steps():
    f64 = dict(dtype=torch.float64)
    ours = _run(lambda m: O.Muon(m.parameters(), lr=0.02, ns_dtype=torch.float64), **f64)
    book = _run(lambda m: TextbookMuon(m.parameters(), lr=0.02, weight_decay=0.1), **f64)
    bf16 = _run(lambda m: O.Muon(m.parameters(), lr=0.02, ns_dtype=torch.bfloat16), **f64)
    for a, b in zip(ours, book, strict=True):
        torch.testing.assert_close(a, b, **TRAJECTORY)
    # bfloat16 rounding is a different trajectory, not a slightly perturbed one
    assert not torch.allclose(bf16[1], book[1], **TRAJECTORY)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 7), (8, 1)])
def test_newton_schulz_maps_each_singular_value_through_the_polynomial(shape):
    g = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = O.orthogonalize(g, dtype=torch.float64)
    torch.testing.assert_close(got, _ns_by_svd(g), rtol=1e-7, atol=1e-10)
    s = torch.linalg.svdvals(got)
    assert 0.6 < s.min() and s.max() < 1.25  # about orthogonal, not exactly: S' in ~[0.7, 1.2]


def test_the_convergent_cubic_iteration_reaches_u_v_transposed():
    g = torch.randn(6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    U, _, Vh = torch.linalg.svd(g, full_matrices=False)
    polar = O.orthogonalize(g, steps=60, coefficients=(1.5, -0.5, 0.0), dtype=torch.float64)
    torch.testing.assert_close(polar, U @ Vh, rtol=1e-7, atol=1e-10)
    quintic = O.orthogonalize(g, steps=60, dtype=torch.float64)  # never settles at 1
    assert (quintic - U @ Vh).abs().max() > 0.05


def test_one_step_is_the_odd_polynomial_in_x_x_transposed():
    x = torch.randn(3, 5, dtype=torch.float64)
    gram = x @ x.T
    a, b, c = O.NS_COEFFICIENTS
    expected = a * x + b * gram @ x + c * gram @ gram @ x
    torch.testing.assert_close(O.newton_schulz_step(x, a, b, c), expected, rtol=1e-12, atol=0)


def test_a_tall_matrix_is_orthogonalised_through_its_transpose():
    g = torch.randn(9, 4)
    assert torch.equal(O.orthogonalize(g), O.orthogonalize(g.T).T)
    assert O.orthogonalize(g).dtype == torch.bfloat16
    assert O.orthogonalize(torch.zeros(3, 2)).abs().sum() == 0  # eps: no division by zero


def test_muon_lr_scale_follows_torch():
    assert O.muon_lr_scale((512, 128)) == 2.0 and O.muon_lr_scale((128, 512)) == 1.0
    assert O.muon_lr_scale(torch.Size([100, 400]), "match_rms_adamw") == pytest.approx(4.0)
    assert O.muon_lr_scale((7, 3), "none") == 1.0


def test_combined_steps_muon_and_adamw_like_torch(tmp_path):
    """Muon for matrices and AdamW for the biases, hand-written and torch's, within the
    trajectory tolerance (AdamW by hand equals torch's to rtol 1e-5, not bit for bit)."""

    class WithBiases(nn.Module):
        def __init__(self, dtype=torch.float32):
            super().__init__()
            self.a, self.b = nn.Linear(7, 9, dtype=dtype), nn.Linear(9, 3, dtype=dtype)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    def make(muon, adamw):
        def build(m):
            matrices = [p for p in m.parameters() if p.dim() == 2]
            vectors = [p for p in m.parameters() if p.dim() < 2]
            return O.Combined(muon(matrices, lr=0.02), adamw(vectors, lr=0.01))

        return build

    ours = _run(make(O.Muon, O.AdamW), model_cls=WithBiases)
    theirs = _run(make(O.torch_muon(), torch.optim.AdamW), model_cls=WithBiases)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, **TRAJECTORY)


def test_combined_state_round_trips_and_groups_are_shared():
    w, v = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))
    combined = O.Combined(O.torch_muon()([w], lr=0.02), torch.optim.AdamW([v], lr=0.01))
    assert len(combined.param_groups) == 2
    combined.param_groups[0]["lr"] = 0.5  # the same dicts as the optimizers' own
    assert combined.optimizers[0].param_groups[0]["lr"] == 0.5
    (w.sum() + (v**2).sum()).backward()
    combined.step()
    state = combined.state_dict()
    again = O.Combined(O.torch_muon()([w], lr=0.02), torch.optim.AdamW([v], lr=0.01))
    again.load_state_dict(state)
    assert again.param_groups[0]["lr"] == 0.5
    assert torch.equal(again.optimizers[0].state[w]["momentum_buffer"], w.grad * 0.05)
    combined.zero_grad(set_to_none=False)
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(v.grad, torch.zeros_like(v))
    combined.zero_grad()
    assert w.grad is None and v.grad is None
    with pytest.raises(ValueError, match="must hold 2 optimizers' states"):
        again.load_state_dict({"optimizers": state["optimizers"][:1]})


def test_hand_written_zero_grad_can_keep_zeroed_tensors():
    p = nn.Parameter(torch.ones(2, 2))
    opt = O.Muon([p])
    p.grad = torch.ones(2, 2)
    opt.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(2, 2))
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: O.Muon([torch.zeros(3, 3), torch.zeros(3)]), ValueError, r"params\[1\] has shape"),
        (lambda: O.Muon([torch.zeros(2, 2)], lr=-1.0), ValueError, "lr must be >= 0"),
        (lambda: O.Muon([torch.zeros(2, 2)], momentum=-0.1), ValueError, "momentum must be"),
        (lambda: O.Muon([torch.zeros(2, 2)], nesterov=1), TypeError, "nesterov must be a bool"),
        (lambda: O.Muon([torch.zeros(2, 2)], adjust_lr="rms"), ValueError, "adjust must be one"),
        (lambda: O.Muon([torch.zeros(2, 2)], eps=0.0), ValueError, "eps must be > 0"),
        (lambda: O.Muon([torch.zeros(2, 2)], ns_steps=-1), ValueError, "ns_steps"),
        (
            lambda: O.Muon([torch.zeros(2, 2)], ns_dtype=torch.float16),
            ValueError,
            "dtype must be one of",
        ),
        (lambda: O.orthogonalize(torch.zeros(2, 3, 4)), ValueError, r"g must be a matrix"),
        (lambda: O.orthogonalize(torch.zeros(2, 3), coefficients=(1, 2)), ValueError, "(a, b, c)"),
        (lambda: O.Combined(), ValueError, "at least one optimizer"),
        (lambda: O.Combined(object()), TypeError, r"optimizers\[0\] is not an optimizer"),
    ],
)
def test_bad_input_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_torch_without_muon_gets_a_clear_error_where_the_reference_is_needed(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    monkeypatch.setattr(torch, "__version__", "2.8.0")
    with pytest.raises(RuntimeError, match=r"torch.optim.Muon needs torch >= 2.9.*torch 2\.8\.0"):
        O.torch_muon()
    with pytest.raises(ValueError, match=r"TrainConfig.optimizer='muon': torch.optim.Muon needs"):
        train_config.preset("ci", optimizer="muon")
    O.Muon([torch.zeros(2, 2)]).step()  # the hand-written one needs no reference
    assert train_config.preset("ci").optimizer == "adamw"  # AdamW runs as before


# --------------------------------------------------------------------------- the exercise

SIGNATURE = "def newton_schulz_step(x, a, b, c):"


def test_exercise_newton_schulz_step_wrong_answers_are_named():
    tried = [
        "gram = x @ x.T\nreturn a * x + b * gram @ x + c * gram @ gram @ x",
        "raise NotImplementedError",
        "return a * x + b * x**3 + c * x**5",
        "gram = x @ x.T\nreturn a * x + b * gram @ x + c * (gram * gram) @ x",
        "gram = x @ x.T\nreturn a * x + c * gram @ x + b * gram @ gram @ x",
    ]
    right, stub, elementwise, squared, swapped = (
        nb07.newton_schulz_step(learner(SIGNATURE, body), quiet=True).message for body in tried
    )
    assert right == "newton_schulz_step: all 5 cases pass. Well done!"
    assert stub.startswith("newton_schulz_step: not yet.")
    assert "hint: this looks like elementwise powers" in elementwise
    assert "hint: this looks like the Gram matrix squared elementwise" in squared
    assert "hint: this looks like b and c swapped" in swapped


def test_exercise_key_is_the_library_step():
    verdict = nb07.newton_schulz_step(O.newton_schulz_step, quiet=True)
    assert verdict.passed
