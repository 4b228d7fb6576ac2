"""RL²: memory across episodes within a trial, the pure PPO pieces, and runs through the Trainer."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from baselines.losses import gae, ppo_clip_loss
from baselines.rl2 import RL2
from baselines.rollout import RolloutCollector
from benchmark.run.config import load_run_config
from benchmark.run.runner import fit_and_evaluate, train_and_evaluate
from tasks import ConfigError, TrialEngine, task_generator


def make_rl2(arms: int = 3, pulls: int = 4, **algo) -> RL2:
    torch.manual_seed(0)
    return RL2(
        algo={"hidden_size": 8, **algo},
        task_name="bernoulli-bandit",
        task={"arms": arms, "pulls": pulls},
    )


def play_fixed_actions(module: RL2, actions: list[int], batch: int = 2):
    """Step a trial engine with a fixed action sequence; return the views and the GRU states."""
    engine = TrialEngine(module.family, batch, task_generator(0, "train"))
    view = engine.start()
    state = module.initial_state(batch)
    views, states = [], []
    for action in actions:
        _, _, state = module.act(view, state, None)
        views.append(view)
        states.append(state[0][0].clone())
        _, view = engine.step(torch.full((batch,), action))
    return views, states


def gru_from_zero(module: RL2, inputs: list[torch.Tensor], reset_every_step: bool = False):
    """The plain nn.GRU run over ``inputs`` from a zero state, never reset (or reset every step)."""
    rnn = module.network.rnn
    h = torch.zeros(1, inputs[0].shape[0], rnn.hidden_size)
    out = []
    with torch.no_grad():
        for phi in inputs:
            if reset_every_step:
                h = torch.zeros_like(h)
            _, h = rnn(phi[None], h)
            out.append(h[0].clone())
    return out


def test_hidden_state_carries_across_episode_ends_and_resets_at_trial_boundary():
    module = make_rl2(arms=3, pulls=4)
    actions = [0, 1, 2, 1, 2, 0, 0, 1]  # two trials of 4 pulls (each pull is one episode)
    views, states = play_fixed_actions(module, actions)
    phis = [v.phi for v in views]

    # Every pull ends an episode: d = 1 at every step of a trial but the first.
    for t, view in enumerate(views):
        first_of_trial = t % 4 == 0
        assert bool(view.reset.all()) == first_of_trial
        assert bool(view.prev_done.all()) == (not first_of_trial)

    # Within a trial the state equals the GRU run with no reset at all (episode ends do not reset).
    expected = gru_from_zero(module, phis[:4]) + gru_from_zero(module, phis[4:])
    for got, want in zip(states, expected, strict=True):
        torch.testing.assert_close(got, want)

    # The trial boundary does reset: continuing trial 1's state would give another state.
    continued = gru_from_zero(module, phis)
    assert not torch.allclose(states[4], continued[4], atol=1e-4)

    # Resetting at every episode end (the bug this guards against) gives different states.
    per_episode = gru_from_zero(module, phis[:4], reset_every_step=True)
    assert not torch.allclose(states[3], per_episode[3], atol=1e-4)


def test_done_flag_reaches_the_input():
    module = make_rl2(arms=3, pulls=4)
    views, _ = play_fixed_actions(module, [0, 1, 2, 1])
    # phi = [s, one_hot(a_prev), r_prev, d_prev]: the last entry is the done flag.
    assert views[0].phi[:, -1].eq(0).all()
    for view in views[1:]:
        assert view.phi[:, -1].eq(1).all()

    # The GRU reads that entry: flipping d changes the policy's output.
    phi = views[1].phi[None]
    flipped = phi.clone()
    flipped[..., -1] = 0.0
    state = module.initial_state(2)
    no_reset = torch.zeros(1, 2, dtype=torch.bool)
    with torch.no_grad():
        _, _, h_done = module.network(phi, state, no_reset)
        _, _, h_flipped = module.network(flipped, state, no_reset)
    assert not torch.allclose(h_done[0], h_flipped[0])


def test_previous_action_in_phi_is_the_one_played():
    module = make_rl2(arms=3, pulls=4)
    actions = [2, 0, 1, 2]
    views, _ = play_fixed_actions(module, actions)
    for t in range(1, 4):
        assert views[t].phi[:, 1:4].argmax(1).tolist() == [actions[t - 1]] * 2


def test_ppo_targets_recompute_the_rollout_exactly():
    module = make_rl2(arms=3, pulls=5, batch_size=6)
    collector = RolloutCollector(module, seed=0)
    batch = collector.collect(module.rollout_length)
    assert batch["reset"][0].all() and not batch["reset"][1:].any()  # one whole trial
    assert batch["trial_done"][-1].all() and not batch["trial_done"][:-1].any()
    targets = module.ppo_targets(batch)
    # The fused GRU from the stored zero state gives the rollout's own log-probs: ratio 1 at first.
    torch.testing.assert_close(targets["log_probs"], batch["log_probs"], atol=1e-5, rtol=0)
    advantages = targets["advantages"]
    assert advantages.mean().abs() < 1e-5 and (advantages.std() - 1).abs() < 1e-4
    # Before any batch the value scale is the identity, so the rollout's values are the critic's.
    raw = gae(batch["rewards"], batch["values"], batch["trial_done"], torch.zeros(6), 0.99, 0.3)
    want = raw + batch["values"]
    # The first batch sets the running moments, so the critic's targets are standardised exactly.
    mean, std = module.value_scale()
    torch.testing.assert_close(mean, want.mean())
    torch.testing.assert_close(std, want.std(unbiased=False))
    torch.testing.assert_close(targets["value_targets"] * std + mean, want, atol=1e-5, rtol=0)


def test_value_scale_is_a_moving_average_over_batches():
    module = make_rl2(value_norm_decay=0.5)
    first, second = torch.full((3, 2), 2.0), torch.full((3, 2), 4.0)
    module.update_value_scale(first)
    mean, std = module.value_scale()
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(0.01)  # var floor
    module.update_value_scale(second)
    mean, std = module.value_scale()
    # mean 0.5 * 2 + 0.5 * 4 = 3; second moment 0.5 * 4 + 0.5 * 16 = 10; variance 10 - 9 = 1.
    assert mean.item() == pytest.approx(3.0) and std.item() == pytest.approx(1.0)
    off = make_rl2(normalize_values=False)
    assert [x.item() for x in off.value_scale()] == [0.0, 1.0]


def test_linear_entropy_schedule_decays_to_zero_over_the_budget():
    module = make_rl2(entropy_coef=0.04, entropy_schedule="linear")
    assert module.entropy_coef() == pytest.approx(0.04)  # not attached to a trainer yet
    for step, want in ((0, 0.04), (25, 0.03), (100, 0.0)):
        module._trainer = SimpleNamespace(global_step=step, max_steps=100)
        assert module.entropy_coef() == pytest.approx(want)
    constant = make_rl2(entropy_coef=0.04)
    constant._trainer = SimpleNamespace(global_step=50, max_steps=100)
    assert constant.entropy_coef() == pytest.approx(0.04)


def test_ppo_clip_loss_matches_hand_computation():
    # Two actions with equal logits: pi(a) = 0.5, entropy log 2; ratios set through old log-probs.
    logits = torch.zeros(5, 2, requires_grad=True)
    actions = torch.tensor([0, 1, 0, 1, 0])
    ratios = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0])
    old_log_probs = math.log(0.5) - ratios.log()
    values = torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 3.0])
    loss, parts = ppo_clip_loss(
        logits, values, actions, old_log_probs, advantages, targets, 0.2, 0.5, 0.01
    )
    # min(r A, clip(r) A) per sample: 1.2, 0.5, -1.5, -0.8, 2.2 -> mean 0.32.
    assert parts["policy_loss"].item() == pytest.approx(-0.32, abs=1e-6)
    # 0.5 * mean((target - V)^2) = 0.5 * (1 + 0 + 4 + 0 + 9) / 5 = 1.4.
    assert parts["value_loss"].item() == pytest.approx(1.4, abs=1e-6)
    assert parts["entropy"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert parts["clip_fraction"].item() == pytest.approx(0.8)
    assert loss.item() == pytest.approx(-0.32 + 0.5 * 1.4 - 0.01 * math.log(2), abs=1e-6)

    # Where the clipped term is the minimum (samples 0 and 3) no policy gradient flows.
    policy_only, _ = ppo_clip_loss(
        logits, values, actions, old_log_probs, advantages, targets, 0.2, 0.0, 0.0
    )
    policy_only.backward()
    grad_norms = logits.grad.norm(dim=1)
    assert grad_norms[0] == 0 and grad_norms[3] == 0
    assert (grad_norms[[1, 2, 4]] > 0).all()


def naive_gae(rewards, values, dones, bootstrap, gamma, lam):
    """A_t = sum_k (gamma lam)^(k-t) delta_k, summed forward until a trial end, in plain Python."""
    steps, n = len(rewards), len(rewards[0])
    out = [[0.0] * n for _ in range(steps)]
    for i in range(n):
        value_at = [values[t][i] for t in range(steps)] + [bootstrap[i]]
        for t in range(steps):
            total, weight = 0.0, 1.0
            for k in range(t, steps):
                not_done = 0.0 if dones[k][i] else 1.0
                delta = rewards[k][i] + gamma * not_done * value_at[k + 1] - value_at[k]
                total += weight * delta
                if dones[k][i]:
                    break
                weight *= gamma * lam
            out[t][i] = total
    return out


def test_gae_matches_naive_loop():
    generator = torch.Generator().manual_seed(3)
    rewards = torch.rand(7, 4, generator=generator)
    values = torch.randn(7, 4, generator=generator)
    dones = torch.rand(7, 4, generator=generator) < 0.3
    bootstrap = torch.randn(4, generator=generator)
    for gamma, lam in ((0.99, 0.3), (0.9, 1.0), (0.5, 0.0)):
        got = gae(rewards, values, dones, bootstrap, gamma, lam)
        want = naive_gae(
            rewards.tolist(), values.tolist(), dones.tolist(), bootstrap.tolist(), gamma, lam
        )
        torch.testing.assert_close(got, torch.tensor(want), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("override", "key"),
    [("algo.rollout_steps=5", "algo.rollout_steps"), ("algo.minibatches=0", "algo.minibatches")],
)
def test_bad_rl2_settings_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key):
        load_run_config("rl2", "bernoulli-bandit", [override])


def tiny_spec(budget: int = 900):
    return load_run_config(
        "rl2",
        "bernoulli-bandit",
        [
            "task.arms=3",
            "task.pulls=5",
            "algo.batch_size=20",
            "algo.epochs=2",
            "algo.minibatches=3",
            "algo.hidden_size=8",
            f"trainer.env_steps={budget}",
            "eval.trials=40",
        ],
    )


def test_budget_counts_env_steps_not_optimizer_steps():
    spec = tiny_spec(budget=900)  # 100 env steps per batch of trials -> 9 batches
    outcome = fit_and_evaluate(spec, logger=None, progress=False)
    assert int(outcome.module.env_steps) == 900
    assert outcome.trainer.global_step == 9 * 2 * 3  # epochs x minibatches optimizer steps each
    assert len(outcome.result.per_episode_returns) == 5


def test_rl2_run_through_the_real_trainer_and_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = train_and_evaluate(
        tiny_spec(budget=500), f"sqlite:///{tmp_path}/mlflow.db", progress=False
    )
    assert summary["env_steps"] == 500
    assert summary["trials"] == 40
    # The same config and seed without MLflow: the same training, so the same evaluation.
    result = fit_and_evaluate(tiny_spec(budget=500), logger=None, progress=False).result
    assert summary["mean_total_reward"] == result.mean_total_reward
    assert summary["normalized_score"] == result.normalized_score


@pytest.mark.slow
def test_rl2_learns_five_arms_ten_pulls():
    spec = load_run_config(
        "rl2",
        "bernoulli-bandit",
        ["task.arms=5", "task.pulls=10", "seed=100", "trainer.env_steps=1500000"],
    )
    outcome = fit_and_evaluate(spec, logger=None, progress=False)
    curve = outcome.result.per_episode_returns
    assert outcome.result.mean_total_reward > 6.2  # random 5.0, Bayes-optimal 6.66
    assert curve[-1] > curve[0] + 0.1  # it adapts within the trial
