"""The trainer's optimizer option: optimizer="adamw" (unchanged) or "muon" (torch.optim.Muon for
the blocks' matrices, AdamW for the rest, each on its own learning rate), saved and resumed
like AdamW, and reachable from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import quiet, stop_after, tiny

from course_lib import checkpoints, optim, train_state, transformer
from course_lib import train as T


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return T.load_checkpoint(run_dir / T.CHECKPOINT_NAME)["state_dict"]


def gpt(config: T.TrainConfig) -> transformer.GPT:
    torch.manual_seed(0)
    return transformer.GPT(T.model_config(config, vocab_size=50))


def test_muon_takes_the_blocks_matrices_and_adamw_everything_else():
    cfg = T.preset("ci", optimizer="muon", muon_lr=0.05)  # learned positions and biases
    model = gpt(cfg)
    opt = T.configure_optimizer(model, cfg, fused=False)
    assert isinstance(opt, optim.Combined)
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    name_of = {id(p): n for n, p in model.named_parameters()}
    on_muon = {name_of[id(p)] for p in muon.param_groups[0]["params"]}
    assert on_muon == {
        n for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2
    }
    decayed, kept = adamw.param_groups
    assert {name_of[id(p)] for p in decayed["params"]} == {"tok_emb.weight", "pos_emb.weight"}
    assert all(p.dim() == 1 for p in kept["params"]) and kept["weight_decay"] == 0.0
    every = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters())  # each once (tied: once)
    assert muon.param_groups[0]["weight_decay"] == cfg.weight_decay
    assert muon.param_groups[0]["lr_scale"] == pytest.approx(0.05 / cfg.lr)


def test_adamw_is_configured_as_before():
    cfg = T.preset("ci")
    model = gpt(cfg)
    opt = T.configure_optimizer(model, cfg, fused=False)
    assert type(opt) is torch.optim.AdamW and len(opt.param_groups) == 2
    decay, no_decay = opt.param_groups
    assert [id(p) for p in decay["params"]] == [id(p) for p in model.parameters() if p.dim() >= 2]
    assert [id(p) for p in no_decay["params"]] == [id(p) for p in model.parameters() if p.dim() < 2]
    assert "lr_scale" not in decay and "lr_scale" not in no_decay


def test_each_optimizer_follows_the_schedule_at_its_own_peak(text_file):
    cfg = tiny(text_file, optimizer="muon", muon_lr=0.04)
    data = T.load_data(cfg)
    model = transformer.GPT(T.model_config(cfg, data.tokenizer.vocab_size))
    opt = T.configure_optimizer(model, cfg, fused=False)
    plan = T.course_device.plan(device="cpu", compile="0")
    batches = T.micro_batches(data, cfg, 0, T.rank_rows(cfg.batch_size, 1, 0, 1))
    scaler = T.course_device.grad_scaler(plan)
    T.optimizer_step(model, opt, scaler, batches, 1.5e-3, cfg.grad_clip, plan)
    muon, adamw = opt.optimizers
    assert all(g["lr"] == 1.5e-3 for g in adamw.param_groups)
    assert muon.param_groups[0]["lr"] == pytest.approx(1.5e-3 * 0.04 / cfg.lr, rel=1e-12)


def test_a_muon_run_learns_saves_both_optimizers_and_resumes_bit_for_bit(text_file, tmp_path):
    cfg = tiny(text_file, optimizer="muon", dropout=0.1, bias=False, position="rope")
    full = T.train(cfg, tmp_path / "full", progress=False, log=quiet)
    losses = [r["loss"] for r in full.history if r["kind"] == "train"]
    assert losses[-1] < losses[0] - 0.5, (losses[0], losses[-1])
    saved = T.load_checkpoint(tmp_path / "full" / T.CHECKPOINT_NAME)["train"]["optimizer"]
    muon_state, adamw_state = saved["optimizers"]
    assert {"momentum_buffer"} == set(next(iter(muon_state["state"].values())))
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(next(iter(adamw_state["state"].values())))
    cut = T.train(cfg, tmp_path / "cut", progress=False, log=quiet, should_stop=stop_after(10))
    assert cut.stopped_early and cut.steps == 10
    again = T.train(cfg, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert again.steps == 24
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    md = (tmp_path / "full" / "run_card.md").read_text()
    assert "- optimizer: muon, Muon lr 0.02 for the blocks' matrices" in md


def test_muon_and_adamw_runs_differ_and_a_resume_may_not_switch(text_file, tmp_path):
    T.train(tiny(text_file, max_steps=8), tmp_path / "adamw", progress=False, log=quiet)
    muon = tiny(text_file, max_steps=8, optimizer="muon")
    T.train(muon, tmp_path / "muon", progress=False, log=quiet)
    a, m = weights(tmp_path / "adamw"), weights(tmp_path / "muon")
    assert not torch.equal(a["blocks.0.ffn.fc1.weight"], m["blocks.0.ffn.fc1.weight"])
    with pytest.raises(T.CheckpointError, match=r"fields \['optimizer'\]"):
        T.train(muon, tmp_path / "adamw", resume=True, progress=False, log=quiet)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(optimizer="sgd"), "TrainConfig.optimizer must be one of ('adamw', 'muon')"),
        (dict(optimizer="muon", muon_lr=0.0), "TrainConfig.muon_lr must be in (0.0, inf)"),
        (dict(muon_lr=float("nan")), "TrainConfig.muon_lr must be a finite number"),
    ],
)
def test_bad_optimizer_settings_name_the_field(changes, message):
    with pytest.raises(ValueError) as e:
        T.preset("ci", **changes)
    assert message in str(e.value)


def test_every_lever_of_the_ablation_is_a_set_on_the_command_line(text_file, tmp_path, capsys):
    levers = {
        "optimizer": "muon",
        "muon_lr": "0.03",
        "dtype": "float32",
        "position": "rope",
        "bias": "false",
        "batch_size": "8",
        "lr": "0.002",
        "min_lr": "0.0002",
        "warmup_steps": "2",
        "beta2": "0.95",
        "weight_decay": "0",
        "threads": "1",
    }
    args = ["--preset", "ci", "--data", str(text_file), "--out", str(tmp_path / "cli")]
    args += ["--max-steps", "6", "--no-progress", "--device", "cpu", "--compile", "0"]
    args += ["--set", "eval_every=3", "--set", "sample_tokens=0", "--set", "log_every=1"]
    args += [a for k, v in levers.items() for a in ("--set", f"{k}={v}")]
    config = T.config_from_args(T.build_parser().parse_args(args))
    assert (config.optimizer, config.muon_lr, config.bias, config.batch_size) == (
        "muon",
        0.03,
        False,
        8,
    )
    assert T.main(args) == 0
    card = json.loads((tmp_path / "cli" / "run_card.json").read_text())
    assert card["config"]["optimizer"] == "muon" and card["steps"] == 6
    assert "6 steps; best val loss" in capsys.readouterr().out


def test_an_old_checkpoint_without_the_new_state_field_still_resumes(text_file, tmp_path):
    cfg = tiny(text_file)
    T.train(cfg, tmp_path / "r", progress=False, log=quiet, should_stop=stop_after(8))
    path = tmp_path / "r" / T.CHECKPOINT_NAME
    payload = T.load_checkpoint(path)
    del payload["train"]["dtype_choice"]  # as written before the field existed
    checkpoints.save_checkpoint(path, payload)
    assert train_state.saved_dtype_choice(path) is None
    r = T.train(cfg, tmp_path / "r", resume=True, progress=False, log=quiet)
    assert r.steps == 24
