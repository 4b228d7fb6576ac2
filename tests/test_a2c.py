"""A2C, the non-meta baseline: no memory, same losses, runs through the real Trainer."""

from __future__ import annotations

import pytest
import torch

from baselines.a2c import A2C
from benchmark.run.config import load_run_config
from benchmark.run.evaluation import evaluate_policy
from benchmark.run.runner import fit_and_evaluate
from tasks import TrialEngine, action_codes, build_phi, task_generator


def make_a2c(arms: int = 4, pulls: int = 6) -> A2C:
    torch.manual_seed(0)
    module = A2C(
        algo={"hidden_size": 8}, task_name="bernoulli-bandit", task={"arms": arms, "pulls": pulls}
    )
    # Non-trivial output weights, so a dependence on the input would show in the logits.
    torch.nn.init.normal_(module.network.policy_head.weight)
    return module


def test_output_does_not_depend_on_previous_action_reward_or_done():
    module = make_a2c(arms=4)
    n = 6
    obs = torch.zeros(n, 1)
    generator = torch.Generator().manual_seed(1)
    phis = [
        build_phi(
            obs,
            torch.randint(-1, 4, (n,), generator=generator),
            torch.rand(n, generator=generator),
            torch.rand(n, generator=generator) < 0.5,
            action_codes(4),
        )
        for _ in range(3)
    ]
    assert not torch.equal(phis[0], phis[1])
    with torch.no_grad():
        outputs = [module.network(module.observation(phi)) for phi in phis]
    for logits, values in outputs[1:]:
        torch.testing.assert_close(logits, outputs[0][0])
        torch.testing.assert_close(values, outputs[0][1])


def test_no_memory_in_rollouts_or_evaluation():
    module = make_a2c(arms=4, pulls=6)
    assert module.initial_state(5) == ()
    engine = TrialEngine(module.family, 5, task_generator(0, "train"))
    view = engine.start()
    policy = module.make_policy()
    policy.begin(module.family, 5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        first_logits, _ = module.network(view.obs)
    for _ in range(8):  # crosses a trial boundary
        actions, extras, state = module.act(view, (), None)
        assert state == ()
        with torch.no_grad():
            logits, _ = module.network(view.obs)
        torch.testing.assert_close(logits, first_logits)  # the same distribution at every step
        _, view = engine.step(policy.act(view))


def test_a2c_run_through_the_real_trainer():
    def run(seed: int):
        overrides = ["task.arms=3", "task.pulls=5", "algo.batch_size=20", f"seed={seed}"]
        overrides += ["trainer.env_steps=1050", "eval.trials=50"]
        spec = load_run_config("a2c", "bernoulli-bandit", overrides)
        return fit_and_evaluate(spec, logger=None, progress=False)

    outcome, again, other = run(0), run(0), run(1)
    # 100 env steps per batch of 20 trials x 5 pulls: the budget rounds up to 11 whole batches.
    assert int(outcome.module.env_steps) == 1100
    assert outcome.trainer.global_step == 11  # one optimizer step per rollout batch
    result = outcome.result
    assert len(result.per_episode_returns) == 5
    assert result.mean_total_reward == pytest.approx(sum(result.per_episode_returns))
    # The same seed gives the same weights and numbers; another seed does not.
    assert result == again.result and result != other.result
    weights, same = outcome.module.state_dict(), again.module.state_dict()
    assert all(torch.equal(weights[key], same[key]) for key in weights)


@pytest.mark.slow
def test_a2c_stays_at_best_fixed_arm_value_with_a_flat_curve():
    spec = load_run_config(
        "a2c",
        "bernoulli-bandit",
        ["task.arms=5", "task.pulls=10", "seed=100", "trainer.env_steps=500000"],
    )
    outcome = fit_and_evaluate(spec, logger=None, progress=False)
    module = outcome.module
    result = evaluate_policy(module.make_policy(), module.family, 5000, seed=100, split="tune")
    assert abs(result.mean_total_reward - 5.0) < 4 * result.stderr + 0.05
    curve = torch.tensor(result.per_episode_returns)
    assert (curve - curve.mean()).abs().max() < 0.04  # flat: no adaptation within the trial
