"""course_lib.privacy: canaries and exposure, per-example gradients and clipping equal to Opacus,
DP-SGD, the RDP accountant equal to Opacus', and federated averaging."""

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp
from opacus.optimizers import DPOptimizer
from torch import nn

from course_lib import privacy
from course_lib.transformer import GPT, GPTConfig


def gpt(seed=0, **kw) -> GPT:
    sizes = dict(vocab_size=19, block_size=12, d_model=16, n_heads=2, n_layers=2, d_ff=24)
    torch.manual_seed(seed)
    options = {"init_std": 0.1, "fast": True, "position": "rope", **kw}
    return GPT(GPTConfig(**sizes, **options)).eval()


def batch(b=5, t=9, vocab=19, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (b, t), generator=g), torch.randint(
        0, vocab, (b, t), generator=g
    )


def opacus_grads(model, x, y):
    twin = copy.deepcopy(model).train()  # Opacus records activations in training mode only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(twin, loss_reduction="mean")
        per = F.cross_entropy(wrapped(x).transpose(1, 2), y, reduction="none").mean(1)
        per.mean().backward()
    return {k: p.grad_sample for k, p in twin.named_parameters()}


# ------------------------------------------------------------------------------ canaries


def test_random_secret_is_digits_and_seeded():
    a = privacy.random_secret(6, torch.Generator().manual_seed(3))
    b = privacy.random_secret(6, torch.Generator().manual_seed(3))
    assert a == b and len(a) == 6 and a.isdigit()
    with pytest.raises(ValueError, match="n_digits must be a positive integer"):
        privacy.random_secret(0, torch.Generator())


def test_insert_canaries_counts_and_keeps_the_text():
    text = "".join(f"line {i}\n" for i in range(50))
    out = privacy.insert_canaries(text, [("my PIN is 1234\n", 3), ("code 99\n", 1)], seed=5)
    assert out.count("my PIN is 1234\n") == 3 and out.count("code 99\n") == 1
    kept = [ln for ln in out.splitlines(keepends=True) if ln.startswith("line")]
    assert "".join(kept) == text
    assert out == privacy.insert_canaries(text, [("my PIN is 1234\n", 3), ("code 99\n", 1)], 5)
    with pytest.raises(ValueError, match="one line ending in a newline"):
        privacy.insert_canaries(text, [("no newline", 2)])
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        privacy.insert_canaries(text, [("x\n", 0)])


def test_candidate_nll_equals_the_sum_of_log_probabilities():
    model = gpt()
    prefix, cands = [3, 4, 5], torch.tensor([[1, 2], [7, 7], [0, 18]])
    got = privacy.candidate_nll(model, prefix, cands, rows=2)
    for i, cand in enumerate(cands):
        ids = torch.tensor([prefix + cand.tolist()])
        logp = F.log_softmax(model(ids), -1)[0]
        want = -(logp[2, cand[0]] + logp[3, cand[1]])
        torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prefix is empty"):
        privacy.candidate_nll(model, [], cands)
    with pytest.raises(ValueError, match="candidates must be"):
        privacy.candidate_nll(model, prefix, torch.tensor([1, 2]))


def test_exposure_rank_and_bits():
    nll = torch.tensor([1.0, 2.0, 3.0])
    assert privacy.exposure(0.5, nll) == (1, pytest.approx(2.0))  # log2(4) - log2(1)
    assert privacy.exposure(2.5, nll) == (3, pytest.approx(2 - math.log2(3)))
    assert privacy.exposure(9.0, nll) == (4, pytest.approx(0.0))
    with pytest.raises(ValueError, match="non-empty"):
        privacy.exposure(1.0, torch.tensor([]))


# ------------------------------------------------------------------- per-example gradients


@pytest.mark.parametrize("kind", [dict(bias=False), dict(bias=True, tie_weights=False)])
def test_per_example_grads_equal_opacus_exactly_and_autograd(kind):
    model = gpt(**kind)
    x, y = batch()
    ours = privacy.per_example_grads(model, x, y)
    theirs = opacus_grads(model, x, y)
    assert ours.keys() == theirs.keys()
    for k in ours:  # float32, one CPU thread: the same numbers
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-5, atol=1e-6)
    for i in (0, 4):  # and each row is that example's own gradient
        model.zero_grad()
        privacy.example_loss(model(x[i : i + 1])[0], y[i]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(ours[k][i], p.grad, rtol=1e-5, atol=1e-6)


def test_per_example_grads_with_learned_positions_equal_autograd():
    # Opacus gets this case wrong: its hooks take the position table's input, arange(T), for a
    # batch of T examples. Ours is each example's own gradient.
    model = gpt(position="learned")
    x, y = batch(3)
    ours = privacy.per_example_grads(model, x, y)
    for i in range(3):
        model.zero_grad()
        privacy.example_loss(model(x[i : i + 1])[0], y[i]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(ours[k][i], p.grad, rtol=1e-5, atol=1e-6)


def test_per_example_grads_of_a_plain_module():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(11, 6), nn.Linear(6, 11))
    x, y = batch(4, 3, 11)
    ours = privacy.per_example_grads(model, x, y)
    theirs = opacus_grads(model, x, y)
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-5, atol=1e-6)


def test_per_example_grads_bad_input():
    model = gpt()
    x, y = batch()
    with pytest.raises(ValueError, match="x and y must both be"):
        privacy.per_example_grads(model, x, y[:, :3])
    with pytest.raises(ValueError, match="x and y must both be"):
        privacy.per_example_grads(model, x[:0], y[:0])
    with pytest.raises(ValueError, match=r"x must lie in \[0, 19\)"):
        privacy.per_example_grads(model, x + 19, y)


def test_clipping_bounds_each_example_and_keeps_small_ones():
    g = torch.Generator().manual_seed(2)
    grads = {"a": torch.randn(4, 3, generator=g), "b": torch.randn(4, 2, 2, generator=g)}
    grads["a"][1] *= 0.001
    grads["b"][1] *= 0.001
    clipped, norms = privacy.clip_per_example(grads, 0.5)
    flat = torch.cat([v.flatten(1) for v in grads.values()], 1)
    torch.testing.assert_close(norms, flat.norm(dim=1))
    after = torch.cat([v.flatten(1) for v in clipped.values()], 1)
    assert (after.norm(dim=1) <= 0.5 * (1 + 1e-6)).all()
    torch.testing.assert_close(after[1], flat[1])  # below the norm: unchanged
    for i in (0, 2, 3):  # above it: the same direction
        torch.testing.assert_close(after[i] / after[i].norm(), flat[i] / flat[i].norm())


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_clip_norm_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_norm .* must be a positive number"):
        privacy.clip_per_example({"a": torch.ones(2, 3)}, bad)


def test_clip_bad_types_and_empty():
    with pytest.raises(TypeError, match="max_norm must be a number"):
        privacy.clip_per_example({"a": torch.ones(2, 3)}, True)
    with pytest.raises(ValueError, match="grads is empty"):
        privacy.clip_per_example({}, 1.0)


def test_a_dp_step_equals_opacus_dpoptimizer_without_noise():
    # clipping and averaging as Opacus' DPOptimizer does them (noise 0, the same batch)
    model, x, y = gpt(), *batch(6)
    ours = copy.deepcopy(model)
    clipped, _ = privacy.clip_per_example(privacy.per_example_grads(ours, x, y), 0.05)
    mean = privacy.noisy_mean(clipped, 0.05, 0.0, expected_batch=6, generator=torch.Generator())
    twin = copy.deepcopy(model).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(twin, loss_reduction="mean")
        opt = DPOptimizer(
            torch.optim.SGD(twin.parameters(), lr=1.0),
            noise_multiplier=0.0,
            max_grad_norm=0.05,
            expected_batch_size=6,
        )
        F.cross_entropy(wrapped(x).transpose(1, 2), y, reduction="none").mean(1).mean().backward()
        opt.pre_step()
    for k, p in twin.named_parameters():
        torch.testing.assert_close(mean[k], p.grad, rtol=1e-4, atol=1e-7)


def test_noise_has_the_stated_spread():
    clipped = {"w": torch.zeros(3, 20_000)}
    noisy = privacy.noisy_mean(clipped, 2.0, 1.5, expected_batch=4, generator=torch.Generator())
    assert abs(noisy["w"].std().item() - 1.5 * 2.0 / 4) < 0.01
    with pytest.raises(ValueError, match="noise_multiplier must be >= 0"):
        privacy.noisy_mean(clipped, 2.0, -1, 4, torch.Generator())


# ------------------------------------------------------------------------------- training


def test_train_dp_without_privacy_is_ordinary_training_on_the_same_batches():
    # one step: the gradient train_dp leaves in .grad is the sum of the per-example gradients of
    # its Poisson sample over the expected batch size, with clipping and noise (C large, noise 0)
    # and without them (one ordinary backward pass)
    model, x, y = gpt(), *batch(12)
    g = torch.Generator().manual_seed(4)
    rows = torch.nonzero(torch.rand(12, generator=g) < 0.5)[:, 0]
    grads = privacy.per_example_grads(model, x[rows], y[rows])
    for max_norm in (None, 1e6):
        trained = copy.deepcopy(model)
        privacy.train_dp(
            trained, x, y, 1, sample_rate=0.5, max_norm=max_norm, noise_multiplier=0.0, seed=4
        )
        for k, p in trained.named_parameters():
            torch.testing.assert_close(p.grad, grads[k].sum(0) / 6, rtol=1e-5, atol=1e-6)


def test_train_dp_learns_calls_back_and_is_seeded():
    x, y = batch(16, 8)
    y = x.clone()  # predict the current token: easy
    seen = []
    kwargs = dict(sample_rate=0.5, max_norm=1.0, noise_multiplier=0.3, lr=1e-2, seed=1)
    a, b = gpt(), gpt()
    losses = privacy.train_dp(a, x, y, 30, on_step=seen.append, **kwargs)
    privacy.train_dp(b, x, y, 30, **kwargs)
    assert seen == list(range(1, 31))
    assert sum(losses[-5:]) < sum(losses[:5])
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_train_dp_bad_input():
    model, x, y = gpt(), *batch()
    with pytest.raises(ValueError, match="sample_rate must be in"):
        privacy.train_dp(model, x, y, 1, sample_rate=0, max_norm=1.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise needs a clip norm"):
        privacy.train_dp(model, x, y, 1, sample_rate=0.5, max_norm=None, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="max_norm .* must be a positive number"):
        privacy.train_dp(model, x, y, 1, sample_rate=0.5, max_norm=0.0, noise_multiplier=1.0)


# ----------------------------------------------------------------------------- accounting

GRID = [(q, s) for q in (0.001, 0.01, 0.06, 0.3, 1.0) for s in (0.5, 0.8, 1.0, 2.0, 5.0)]


@pytest.mark.parametrize("q, sigma", GRID)
def test_rdp_equals_opacus_at_every_integer_order(q, sigma):
    orders = list(privacy.ORDERS)
    ours = [privacy.rdp_sampled_gaussian(q, sigma, a) for a in orders]
    theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
    for a, b in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, rel=1e-8)


@pytest.mark.parametrize("q, sigma", GRID)
def test_epsilon_equals_opacus_accountant_on_the_same_orders(q, sigma):
    # the accountant named in the notebook: RDP of the sampled Gaussian at orders 2..256, the
    # conversion of Balle et al. (2020). Tolerance: relative 1e-8 (the same float64 series,
    # summed in another order)
    accountant = RDPAccountant()
    for _ in range(200):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns when the best order is at a grid's end
        theirs = accountant.get_epsilon(1e-5, alphas=list(privacy.ORDERS))
    assert privacy.dp_epsilon(q, sigma, 200, 1e-5) == pytest.approx(theirs, rel=1e-8)


def test_rdp_closed_forms_and_limits():
    assert privacy.rdp_sampled_gaussian(1.0, 2.0, 5) == pytest.approx(5 / 8)
    assert privacy.rdp_sampled_gaussian(0.0, 2.0, 5) == 0.0
    # more noise, fewer steps or a lower sampling rate: less privacy spent
    e = privacy.dp_epsilon(0.01, 1.0, 1000, 1e-5)
    assert privacy.dp_epsilon(0.01, 2.0, 1000, 1e-5) < e
    assert privacy.dp_epsilon(0.01, 1.0, 100, 1e-5) < e
    assert privacy.dp_epsilon(0.001, 1.0, 1000, 1e-5) < e
    assert privacy.dp_epsilon(0.01, 1.0, 1000, 1e-3) < e


@pytest.mark.parametrize("delta", [0, 1, -0.1, 1.5, "0.1", True])
def test_delta_must_lie_in_the_open_unit_interval(delta):
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        privacy.dp_epsilon(0.01, 1.0, 10, delta)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        privacy.epsilon_from_rdp([1.0], [2], delta)


def test_accountant_bad_input():
    with pytest.raises(ValueError, match="noise_multiplier must be > 0"):
        privacy.rdp_sampled_gaussian(0.1, 0.0, 2)
    with pytest.raises(ValueError, match="sample_rate must be in"):
        privacy.rdp_sampled_gaussian(1.5, 1.0, 2)
    with pytest.raises(ValueError, match="order must be an integer >= 2"):
        privacy.rdp_sampled_gaussian(0.1, 1.0, 1.5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        privacy.dp_epsilon(0.1, 1.0, 0, 1e-5)
    with pytest.raises(ValueError, match="as long"):
        privacy.epsilon_from_rdp([1.0, 2.0], [2], 1e-5)


# ------------------------------------------------------------------------ federated averaging


def test_average_states_is_weighted_by_size():
    a, b = {"w": torch.tensor([0.0, 4.0])}, {"w": torch.tensor([2.0, 0.0])}
    torch.testing.assert_close(
        privacy.average_states([a, b], [1, 3])["w"], torch.tensor([1.5, 1.0])
    )
    torch.testing.assert_close(privacy.average_states([a], [5])["w"], a["w"])


def test_average_states_bad_input():
    with pytest.raises(ValueError, match="states is empty"):
        privacy.average_states([], [])
    with pytest.raises(ValueError, match="weights must be 2 numbers"):
        privacy.average_states([{"w": torch.ones(1)}] * 2, [1.0])
    with pytest.raises(ValueError, match="weights must be 1 numbers"):
        privacy.average_states([{"w": torch.ones(1)}], [0.0])


def test_fedavg_one_client_one_step_is_local_training():
    model, x, y = gpt(), *batch(8)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    privacy.fedavg(a, [(x, y)], rounds=1, local_steps=2, batch_size=4, seed=3)
    privacy.local_train(b, x, y, 2, 4, 3e-3, torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_fedavg_averages_the_clients_and_evaluates_every_round():
    model = gpt()
    clients = [batch(4, seed=s) for s in (1, 2, 3)]
    a = copy.deepcopy(model)
    history = privacy.fedavg(
        a, clients, rounds=2, local_steps=1, batch_size=2, evaluate=lambda m: 7.0
    )
    assert history == [7.0, 7.0]
    # one round by hand: copies trained in turn on one generator, then averaged by size
    g = torch.Generator().manual_seed(0)
    states = []
    for cx, cy in clients:
        local = copy.deepcopy(model)
        privacy.local_train(local, cx, cy, 1, 2, 3e-3, g)
        states.append(local.state_dict())
    b = copy.deepcopy(model)
    b.load_state_dict(privacy.average_states(states, [4, 4, 4]))
    c = copy.deepcopy(model)
    privacy.fedavg(c, clients, rounds=1, local_steps=1, batch_size=2)
    for pb, pc in zip(b.parameters(), c.parameters(), strict=True):
        torch.testing.assert_close(pb, pc)


def test_fedavg_bad_input():
    model = gpt()
    with pytest.raises(ValueError, match="clients is empty"):
        privacy.fedavg(model, [], rounds=1, local_steps=1)
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        privacy.fedavg(model, [batch()], rounds=0, local_steps=1)
    with pytest.raises(ValueError, match="local_steps must be a positive integer"):
        privacy.fedavg(model, [batch()], rounds=1, local_steps=0)
