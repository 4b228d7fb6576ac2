"""Return estimators and the A2C loss against naive Python loops."""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical

from baselines.losses import (
    a2c_loss,
    action_distribution,
    gae,
    lambda_returns,
    log_prob_and_entropy,
    n_step_returns,
    ppo_clip_loss,
)
from baselines.policy import gaussian_log_prob, sample_gaussian_actions


def naive_n_step(rewards, dones, bootstrap, gamma):
    T, n = len(rewards), len(rewards[0])
    out = [[0.0] * n for _ in range(T)]
    for i in range(n):
        for t in range(T):
            total, discount, k = 0.0, 1.0, t
            while True:
                total += discount * rewards[k][i]
                if dones[k][i]:
                    break
                discount *= gamma
                k += 1
                if k == T:  # truncated segment: bootstrap from the critic
                    total += discount * bootstrap[i]
                    break
            out[t][i] = total
    return out


def naive_gae(rewards, values, dones, bootstrap, gamma, lam):
    T, n = len(rewards), len(rewards[0])
    out = [[0.0] * n for _ in range(T)]
    for i in range(n):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                next_value = (
                    0.0 if dones[k][i] else (values[k + 1][i] if k + 1 < T else bootstrap[i])
                )
                delta = rewards[k][i] + gamma * next_value - values[k][i]
                total += weight * delta
                if dones[k][i]:
                    break
                weight *= gamma * lam
            out[t][i] = total
    return out


def random_segment(T=7, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.rand(T, n, generator=g)
    values = torch.rand(T, n, generator=g)
    dones = torch.zeros(T, n, dtype=torch.bool)
    dones[2, 0] = True  # a trial ends mid-segment in slot 0
    dones[6, 1] = True  # slot 1's trial ends exactly at the segment end
    dones[3, 2] = dones[4, 2] = True  # slot 2: two trial ends, then truncation
    bootstrap = torch.tensor([0.7, 5.0, -0.3])
    return rewards, values, dones, bootstrap


def test_n_step_returns_match_naive_loop_with_truncation_and_trial_ends():
    rewards, _, dones, bootstrap = random_segment()
    got = n_step_returns(rewards, dones, bootstrap, 0.9)
    want = torch.tensor(naive_n_step(rewards.tolist(), dones.tolist(), bootstrap.tolist(), 0.9))
    torch.testing.assert_close(got, want)
    # slot 1 ends its trial at the last step: the bootstrap value 5.0 must not leak in
    assert got[6, 1] == rewards[6, 1]


def test_gae_matches_naive_loop_and_reduces_to_n_step_at_lambda_one():
    rewards, values, dones, bootstrap = random_segment(seed=1)
    got = gae(rewards, values, dones, bootstrap, 0.99, 0.3)
    want = naive_gae(
        rewards.tolist(), values.tolist(), dones.tolist(), bootstrap.tolist(), 0.99, 0.3
    )
    torch.testing.assert_close(got, torch.tensor(want))
    full = gae(rewards, values, dones, bootstrap, 0.9, 1.0) + values
    torch.testing.assert_close(full, n_step_returns(rewards, dones, bootstrap, 0.9))


def test_lambda_returns_span_one_step_targets_to_n_step_returns():
    rewards, values, dones, bootstrap = random_segment(seed=2)
    full = lambda_returns(rewards, values, dones, bootstrap, 0.9, 1.0)
    torch.testing.assert_close(full, n_step_returns(rewards, dones, bootstrap, 0.9))
    one_step = lambda_returns(rewards, values, dones, bootstrap, 0.9, 0.0)
    next_values = torch.cat([values[1:], bootstrap[None]]) * ~dones
    torch.testing.assert_close(one_step, rewards + 0.9 * next_values)
    mixed = lambda_returns(rewards, values, dones, bootstrap, 0.9, 0.5)
    want = naive_gae(
        rewards.tolist(), values.tolist(), dones.tolist(), bootstrap.tolist(), 0.9, 0.5
    )
    torch.testing.assert_close(mixed, torch.tensor(want) + values)


def test_a2c_loss_matches_hand_computation():
    logits = torch.tensor([[[0.0, 1.0]], [[2.0, 0.0]]], requires_grad=True)
    values = torch.tensor([[0.5], [1.0]], requires_grad=True)
    actions = torch.tensor([[1], [0]])
    returns = torch.tensor([[1.5], [0.0]])
    loss, parts = a2c_loss(logits, values, actions, returns, value_coef=0.5, entropy_coef=0.1)
    logp = torch.log_softmax(logits.detach(), -1)
    adv = torch.tensor([1.0, -1.0])
    policy = -(logp[0, 0, 1] * adv[0] + logp[1, 0, 0] * adv[1]) / 2
    value = 0.5 * (1.0**2 + 1.0**2) / 2
    probs = logp.exp()
    entropy = -(probs * logp).sum(-1).mean()
    torch.testing.assert_close(parts["policy_loss"], policy)
    torch.testing.assert_close(parts["value_loss"], torch.tensor(value))
    torch.testing.assert_close(loss.detach(), policy + 0.5 * value - 0.1 * entropy)
    loss.backward()
    # the critic gets gradient only through the value loss: d/dV of 0.5*0.5*mean((R-V)^2)
    torch.testing.assert_close(values.grad, torch.tensor([[-0.25], [0.25]]))


def test_a2c_loss_can_normalise_advantages():
    logits = torch.zeros(3, 1, 2, requires_grad=True)
    values = torch.zeros(3, 1)
    actions = torch.tensor([[0], [0], [1]])
    returns = torch.tensor([[1.0], [3.0], [5.0]])
    _, parts = a2c_loss(logits, values, actions, returns, 0.5, 0.0, normalize_advantages=True)
    # advantages (1, 3, 5) normalise to (-1, 0, 1); every log-prob is log(1/2)
    torch.testing.assert_close(parts["policy_loss"], torch.tensor(0.0), atol=1e-6, rtol=0)
    returns = torch.tensor([[1.0], [3.0], [4.0]])
    _, parts = a2c_loss(logits, values, actions, returns, 0.5, 0.0, normalize_advantages=True)
    adv = (returns - returns.mean()) / returns.std()
    expected = -(torch.log(torch.tensor(0.5)) * adv).mean()
    torch.testing.assert_close(parts["policy_loss"], expected)


def gaussian_log_density(x, mean, std):
    """log N(x; mean, std^2) of one scalar, written out by hand."""
    return -((x - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_gaussian_a2c_loss_matches_hand_computation():
    # two steps, one slot, a 2-D action; log-std per entry (0, log 2)
    mean = torch.tensor([[[0.0, 1.0]], [[0.5, -1.0]]], requires_grad=True)
    log_std = torch.tensor([0.0, math.log(2.0)], requires_grad=True)
    values = torch.tensor([[0.5], [1.0]], requires_grad=True)
    actions = torch.tensor([[[1.0, 3.0]], [[0.0, -1.0]]])
    returns = torch.tensor([[1.5], [0.0]])
    dist = action_distribution(mean, log_std)
    loss, parts = a2c_loss(dist, values, actions, returns, value_coef=0.5, entropy_coef=0.1)
    stds = (1.0, 2.0)
    logp = [
        sum(
            gaussian_log_density(actions[t, 0, i].item(), mean[t, 0, i].item(), stds[i])
            for i in range(2)
        )
        for t in range(2)
    ]
    advantages = (1.0, -1.0)
    policy = -(logp[0] * advantages[0] + logp[1] * advantages[1]) / 2
    # entropy of a diagonal Gaussian: sum over entries of 0.5 log(2 pi e sigma^2)
    entropy = sum(0.5 * math.log(2 * math.pi * math.e * s**2) for s in stds)
    value = 0.5 * (1.0**2 + 1.0**2) / 2
    torch.testing.assert_close(parts["policy_loss"], torch.tensor(policy))
    torch.testing.assert_close(parts["entropy"], torch.tensor(entropy))
    torch.testing.assert_close(loss.detach(), torch.tensor(policy + 0.5 * value - 0.1 * entropy))
    loss.backward()
    # d(-entropy_coef * entropy)/d log_std_i = -0.1 per entry, plus the policy term
    assert log_std.grad is not None and mean.grad is not None
    z_sq = [
        [((actions[t, 0, i] - mean[t, 0, i]) / stds[i]).item() ** 2 for i in range(2)]
        for t in range(2)
    ]
    # d log N / d log_std = z^2 - 1; policy loss = -mean_t(adv_t * logp_t)
    expected = [
        -sum(advantages[t] * (z_sq[t][i] - 1.0) for t in range(2)) / 2 - 0.1 for i in range(2)
    ]
    torch.testing.assert_close(log_std.grad, torch.tensor(expected))


def test_gaussian_ppo_ratio_is_one_under_the_old_policy_and_log_probs_agree():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 3, 2, generator=generator)
    log_std = torch.tensor([-0.5, 0.3])
    actions = sample_gaussian_actions(mean, log_std, generator)
    old = gaussian_log_prob(mean, log_std, actions)
    torch.testing.assert_close(old, action_distribution(mean, log_std).log_prob(actions))
    loss, parts = ppo_clip_loss(
        action_distribution(mean, log_std),
        torch.zeros(4, 3),
        actions,
        old,
        torch.ones(4, 3),
        torch.zeros(4, 3),
        clip=0.2,
        value_coef=0.5,
        entropy_coef=0.0,
    )
    # ratio 1 everywhere: the surrogate is -mean(advantage) = -1 and nothing is clipped
    torch.testing.assert_close(parts["policy_loss"], torch.tensor(-1.0))
    assert float(parts["clip_fraction"]) == 0.0
    shifted = action_distribution(mean + 1.0, log_std)
    _, parts = ppo_clip_loss(
        shifted, torch.zeros(4, 3), actions, old, torch.ones(4, 3), torch.zeros(4, 3), 0.2, 0.5, 0.0
    )
    assert float(parts["clip_fraction"]) > 0.0


def test_discrete_logits_and_action_distribution_give_the_same_loss():
    logits = torch.tensor([[[0.0, 1.0, -1.0]], [[2.0, 0.0, 0.5]]])
    values = torch.tensor([[0.5], [1.0]])
    actions = torch.tensor([[2], [0]])
    returns = torch.tensor([[1.5], [0.0]])
    from_logits = a2c_loss(logits, values, actions, returns, 0.5, 0.1)[0]
    from_dist = a2c_loss(action_distribution(logits), values, actions, returns, 0.5, 0.1)[0]
    assert torch.equal(from_logits, from_dist)


def test_log_prob_and_entropy_of_logits_match_categorical_with_gradients():
    torch.manual_seed(0)
    logits = torch.randn(7, 4, 5, dtype=torch.double, requires_grad=True)
    actions = torch.randint(0, 5, (7, 4))
    weights = torch.randn(7, 4, dtype=torch.double)
    log_probs, entropy = log_prob_and_entropy(logits, actions)
    reference = Categorical(logits=logits)
    torch.testing.assert_close(log_probs, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    grad = torch.autograd.grad((log_probs * weights + entropy).sum(), logits)[0]
    expected = (reference.log_prob(actions) * weights + reference.entropy()).sum()
    torch.testing.assert_close(grad, torch.autograd.grad(expected, logits)[0])
