"""The rollout collector's bookkeeping against a naive per-step loop."""

from __future__ import annotations

import torch
from run_support import fit_updates

from baselines.rollout import RolloutCollector
from benchmark.run.config import load_run_config
from benchmark.run.runner import build_module


def test_completed_trial_returns_match_a_per_step_loop_across_segments():
    collector = RolloutCollector.__new__(RolloutCollector)  # only the bookkeeping is exercised
    generator = torch.Generator().manual_seed(0)
    collector.running_return = torch.zeros(4)
    running, fast_total, naive_total = torch.zeros(4), 0.0, 0.0
    for _ in range(5):
        rewards = torch.randn(7, 4, generator=generator)  # negative rewards too
        done = torch.rand(7, 4, generator=generator) < 0.3
        fast_total += collector._completed_trials({"rewards": rewards, "trial_done": done})[
            "completed_return"
        ].item()
        for t in range(7):
            running = running + rewards[t]
            naive_total += (running * done[t]).sum().item()
            running = running * ~done[t]
        torch.testing.assert_close(collector.running_return, running)
    assert abs(fast_total - naive_total) < 1e-4


def test_segments_carry_the_hidden_state_and_resets_only_at_trial_starts():
    spec = load_run_config(
        "lstm-a2c",
        "bernoulli-bandit",
        ["task.pulls=6", "algo.batch_size=3", "algo.rollout_steps=4"],
    )
    module = build_module(spec)
    collector = RolloutCollector(module, seed=0)
    first, second = collector.collect(4), collector.collect(4)
    assert first["reset"][:, 0].tolist() == [True, False, False, False]
    assert second["reset"][:, 0].tolist() == [False, False, True, False]  # step 6 starts trial 2
    # the second segment starts from the hidden state the first one ended with (truncated BPTT)
    logits, values, state = module.network(first["phi"], tuple(first["h0"]), first["reset"])
    for carried, recomputed in zip(second["h0"], state, strict=True):
        torch.testing.assert_close(carried, recomputed)
    assert first["env_steps"] == 12 and not second["h0"][0].requires_grad


def test_each_rollout_is_played_by_the_parameters_it_updates():
    """Lightning must not prefetch the next rollout before the current update (on-policy)."""
    spec = load_run_config(
        "lstm-a2c", "bernoulli-bandit", ["task.pulls=5", "algo.batch_size=4", "algo.log_every=1"]
    )
    module = build_module(spec)
    seen: list[tuple[int, int]] = []
    update = module.training_step

    def recording_step(batch, batch_idx):
        seen.append((int(batch["policy_version"]), module.policy_version))
        return update(batch, batch_idx)

    module.training_step = recording_step
    fit_updates(spec, module, 4)
    assert len(seen) == 4 and all(played == current for played, current in seen)
    versions = [played for played, _ in seen]
    assert versions == sorted(set(versions))  # each update changed the parameters


def test_lstm_a2c_can_regress_standardised_returns():
    """With ``normalize_values`` the critic's targets are the n-step returns standardised by the
    running moments, which the first batch sets; the critic's output is rescaled to bootstrap."""
    from baselines.losses import n_step_returns

    spec = load_run_config(
        "lstm-a2c",
        "bernoulli-bandit",
        ["task.pulls=8", "algo.batch_size=16", "algo.gamma=0.99", "algo.normalize_values=true"]
        + ["algo.gae_lambda=1.0"],
    )
    module = build_module(spec)
    batch = RolloutCollector(module, seed=0).collect(8)
    bootstrap = torch.zeros(16)
    targets = module.critic_targets(batch, torch.zeros(8, 16), bootstrap)
    returns = n_step_returns(batch["rewards"], batch["trial_done"], bootstrap, 0.99)
    torch.testing.assert_close(module.value_moments[0], returns.mean())
    torch.testing.assert_close(module.value_moments[1], returns.pow(2).mean())
    assert abs(float(targets.mean())) < 1e-5 and abs(float(targets.pow(2).mean()) - 1) < 1e-4
    mean, std = module.value_scale()
    torch.testing.assert_close(targets * std + mean, returns)
    assert "value_moments" in module.state_dict()
    plain = build_module(load_run_config("lstm-a2c", "bernoulli-bandit", ["task.pulls=10"]))
    assert "value_moments" not in plain.state_dict()  # a run without it checkpoints no moments


def test_lstm_a2c_targets_are_td_lambda_returns_below_lambda_one():
    """``algo.gae_lambda`` < 1 mixes the critic's values (in reward units) into the targets."""
    from baselines.losses import lambda_returns

    spec = load_run_config(
        "lstm-a2c",
        "bernoulli-bandit",
        ["task.pulls=8", "algo.batch_size=16", "algo.gae_lambda=0.5", "algo.gamma=0.9"]
        + ["algo.normalize_values=false"],
    )
    module = build_module(spec)
    batch = RolloutCollector(module, seed=0).collect(8)
    values, bootstrap = torch.rand(8, 16), torch.zeros(16)
    targets = module.critic_targets(batch, values, bootstrap)
    want = lambda_returns(batch["rewards"], values, batch["trial_done"], bootstrap, 0.9, 0.5)
    torch.testing.assert_close(targets, want)
    without_values = module.critic_targets(batch, torch.zeros(8, 16), bootstrap)
    assert not torch.allclose(targets, without_values)  # below lambda 1 the values count
