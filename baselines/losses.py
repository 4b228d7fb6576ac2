"""Pure return estimators and losses. Time is the leading dimension: tensors are [T, n].

``dones[t]`` marks that step t ended a trial, so nothing is bootstrapped across it: the next step
belongs to a different MDP. A segment that stops mid-trial (truncation) is bootstrapped with
``bootstrap_value``, the critic's estimate at the first step after the segment.

The policy losses take either discrete ``logits`` (a Categorical) or a ready-made distribution from
:func:`action_distribution` (a diagonal Gaussian for continuous actions, whose log-probability and
entropy are summed over the action's entries).
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Distribution, Independent, Normal


def action_distribution(head_output: torch.Tensor, log_std: torch.Tensor | None = None):
    """The policy's distribution over actions from its head's output.

    Args:
        head_output: logits [..., A] (discrete) or the Gaussian's mean [..., action_dim].
        log_std: None for discrete actions; else the state-independent log standard deviation
            [action_dim] of a diagonal Gaussian.

    Returns:
        a Categorical, or an ``Independent(Normal)`` whose ``log_prob`` and ``entropy`` sum over
        the action's entries.
    """
    if log_std is None:
        return Categorical(logits=head_output)
    return Independent(Normal(head_output, log_std.exp().expand_as(head_output)), 1)


def log_prob_and_entropy(
    policy: torch.Tensor | Distribution, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(actions) and the policy's entropy, both [...].

    Args:
        policy: categorical logits [..., A], or a distribution with batch shape [...] from
            :func:`action_distribution`.
        actions: long [...] (float [..., action_dim] with a Gaussian).

    For logits the action axis is moved to the front before the log-softmax: PyTorch's CPU
    softmax over a short last axis (a handful of actions) is many times slower than over a
    leading one, where it vectorises across the batch.
    """
    if isinstance(policy, Distribution):
        return policy.log_prob(actions), policy.entropy()
    log_p = policy.movedim(-1, 0).log_softmax(0)  # [A, ...]
    chosen = log_p.gather(0, actions.unsqueeze(0)).squeeze(0)
    return chosen, -(log_p.exp() * log_p).sum(0)


def n_step_returns(
    rewards: torch.Tensor, dones: torch.Tensor, bootstrap_value: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Discounted n-step bootstrapped returns R_t = r_t + gamma (1 - d_t) R_{t+1}.

    Args:
        rewards: float [T, n].
        dones: bool [T, n], trial ends.
        bootstrap_value: float [n], V at step T (used where the segment is truncated).
        gamma: discount.
    """
    decay = gamma * (~dones).to(rewards.dtype)
    return _discounted_sums(rewards, decay, bootstrap_value)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    bootstrap_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016).

    Args:
        rewards: float [T, n].
        values: float [T, n], V(s_t).
        dones: bool [T, n], trial ends.
        bootstrap_value: float [n], V at step T.
        gamma: discount.
        lam: GAE lambda.

    Returns:
        advantages [T, n]; the value targets are ``advantages + values``.
    """
    not_done = (~dones).to(rewards.dtype)
    next_values = torch.cat([values[1:], bootstrap_value.unsqueeze(0)])
    deltas = rewards + gamma * not_done * next_values - values
    return _discounted_sums(deltas, gamma * lam * not_done, torch.zeros_like(bootstrap_value))


def _discounted_sums(terms: torch.Tensor, decay: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """out_t = terms_t + decay_t out_{t+1} backwards over time, with out_T = ``final`` [n]: one
    fused op per step, written in place into the output."""
    out = torch.empty_like(terms)
    running = final
    for t in range(terms.shape[0] - 1, -1, -1):
        running = torch.addcmul(terms[t], decay[t], running, out=out[t])
    return out


def lambda_returns(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    bootstrap_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(lambda) returns, the GAE advantages plus V: lambda 1 gives the n-step returns of
    :func:`n_step_returns`, lambda 0 the one-step targets r_t + gamma V(s_{t+1}).

    Args: as :func:`gae`.
    """
    return gae(rewards, values, dones, bootstrap_value, gamma, lam) + values


def a2c_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    returns: torch.Tensor,
    value_coef: float,
    entropy_coef: float,
    normalize_advantages: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The advantage actor-critic loss: policy gradient + value regression - entropy bonus.

    Args:
        logits: float [T, n, A], or a distribution with batch shape [T, n] from
            :func:`action_distribution` (continuous actions).
        values: float [T, n], differentiable critic outputs.
        actions: long [T, n] (float [T, n, action_dim] with a Gaussian).
        returns: float [T, n], targets (no gradient flows into them).
        value_coef: weight of 0.5 * (R - V)^2.
        entropy_coef: weight of the entropy bonus.
        normalize_advantages: scale the advantages of the batch to zero mean and unit variance.

    Returns:
        the scalar loss and its parts (detached) for logging.
    """
    log_probs, entropy = log_prob_and_entropy(logits, actions)
    advantages = (returns - values).detach()
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(log_probs * advantages).mean()
    value_loss = 0.5 * (returns.detach() - values).pow(2).mean()
    entropy = entropy.mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    parts = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}
    return loss, {k: v.detach() for k, v in parts.items()}


def ppo_clip_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    value_targets: torch.Tensor,
    clip: float,
    value_coef: float,
    entropy_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate objective with a value loss and an entropy bonus.

    Args:
        logits: float [..., A] under the current parameters, or a distribution with batch shape
            [...] from :func:`action_distribution`.
        values: float [...], current critic outputs.
        actions: long [...] (float [..., action_dim] with a Gaussian).
        old_log_probs: float [...], log pi_old(a|s) from the rollout.
        advantages: float [...], already normalised if desired.
        value_targets: float [...].
        clip: epsilon of the ratio clip.
        value_coef: weight of 0.5 * (target - V)^2.
        entropy_coef: weight of the entropy bonus.
    """
    log_probs, entropy = log_prob_and_entropy(logits, actions)
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    policy_loss = -torch.min(unclipped, clipped).mean()
    value_loss = 0.5 * (value_targets - values).pow(2).mean()
    entropy = entropy.mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
    parts = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "clip_fraction": clip_fraction,
    }
    return loss, {k: v.detach() for k, v in parts.items()}
