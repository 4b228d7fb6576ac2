"""Plain-PyTorch parity loops for ``metarl-bench perf``, and the interval timer that rates them.

Each loop is one learned algorithm's network, loss and update written as plain PyTorch with B
bandits as tensors, the autograd graph kept over a whole trial and one update per trial (as
Lightning's own parity benchmarks compare against vanilla PyTorch). :mod:`benchmark.studies.perf`
times the suite against them at the same settings; both are rated by the median interval
(:class:`IntervalTimer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from baselines.losses import a2c_loss, gae, n_step_returns, ppo_clip_loss
from baselines.networks import FeedForwardActorCritic, RecurrentActorCritic
from baselines.policy import sample_actions


class IntervalTimer:
    """Wall-clock intervals between marks; the rate is taken over the median interval.

    The median of many short intervals (one update, or one parity trial) is robust to the bursts
    of other load a shared machine has, where the mean over the whole run is not; the suite and
    the parity loop are timed the same way. A timer can be fed by several runs (rounds): the first
    mark after :meth:`stop` opens a run without recording an interval, so warm-up and start-up
    between runs are never counted.
    """

    def __init__(self):
        self.intervals: list[float] = []
        self._last: float | None = None

    def mark(self) -> None:
        """Record the interval since the previous mark of this run (the first mark opens it)."""
        now = time.perf_counter()
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        """End the current run: the next mark opens a new one."""
        self._last = None

    def median_rate(self, work_per_interval: float) -> float:
        """Work per second over the median interval of all runs."""
        ordered = sorted(self.intervals)
        return work_per_interval / ordered[len(ordered) // 2]


def time_trials(
    play_trial: Callable[[], None], trials: int, work: float, timer: IntervalTimer | None
) -> float:
    """Rate of a parity loop: ``trials`` timed calls of ``play_trial`` after one warm-up call.

    Args:
        play_trial: plays and learns from one trial (one update).
        trials: measured trials.
        work: env steps per trial.
        timer: pools the intervals with earlier runs (rounds); None times this run alone.

    Returns:
        env steps per second over the median trial of all the timer's runs.
    """
    timer = timer or IntervalTimer()
    play_trial()
    for _ in range(trials):
        timer.mark()
        play_trial()
    timer.mark()
    timer.stop()
    return timer.median_rate(work)


def _bandit_phi(action: torch.Tensor, reward: torch.Tensor, arms: int) -> torch.Tensor:
    """phi after a pull, as the trial engine builds it: [s = 0, one_hot(a), r, d = 1]."""
    ones = torch.ones(action.shape[0], 1)
    one_hot = torch.nn.functional.one_hot(action, arms).float()
    return torch.cat([ones * 0.0, one_hot, reward[:, None], ones], 1)


def _a2c_update(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tensors: tuple[list[torch.Tensor], ...],
    rewards: torch.Tensor,
    dones: torch.Tensor,
) -> None:
    """One A2C update over a trial: n-step returns (0.9), the loss (0.05, 0.05), clip at 40.

    Args:
        net: the network whose graph the trial kept.
        optimizer: its optimizer.
        tensors: per-pull logits, values and actions of the trial.
        rewards: (pulls, B) rewards.
        dones: (pulls, B), True at the trial's last pull.
    """
    returns = n_step_returns(rewards, dones, torch.zeros(rewards.shape[1]), 0.9)
    stacked = [torch.stack(per_pull) for per_pull in tensors]
    loss, _ = a2c_loss(*stacked, returns, 0.05, 0.05)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 40.0)
    optimizer.step()


def parity_steps_per_second(
    arms: int, pulls: int, batch: int, hidden: int, trials: int, timer: IntervalTimer | None = None
) -> float:
    """Env steps per second of the naive plain-PyTorch LSTM-A2C loop (graph kept over a trial).

    Args:
        arms: bandit arms.
        pulls: pulls per trial (the update is made once per trial).
        batch: parallel bandits B.
        hidden: LSTM units.
        trials: measured trials (updates), after one warm-up trial.
        timer: pools the intervals with earlier runs (rounds); the rate is over all of them.
    """
    torch.manual_seed(0)
    net = RecurrentActorCritic(arms + 3, arms, hidden, "lstm")
    optimizer = torch.optim.RMSprop(net.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    no_reset = torch.zeros(1, batch, dtype=torch.bool)

    def play_trial() -> None:
        p = torch.rand(batch, arms)
        state = net.initial_state(batch, "cpu")
        phi = torch.zeros(batch, arms + 3)
        logits_t, values_t, actions_t, rewards_t = [], [], [], []
        for _ in range(pulls):
            logits, values, state = net(phi[None], state, no_reset)
            action = sample_actions(logits[0].detach(), None)
            reward = (torch.rand(batch) < p.gather(1, action[:, None]).squeeze(1)).float()
            phi = torch.cat(
                [
                    torch.zeros(batch, 1),
                    torch.nn.functional.one_hot(action, arms).float(),
                    reward[:, None],
                    torch.ones(batch, 1),
                ],
                1,
            )
            logits_t.append(logits[0]), values_t.append(values[0])
            actions_t.append(action), rewards_t.append(reward)
        rewards = torch.stack(rewards_t)
        dones = torch.zeros_like(rewards, dtype=torch.bool)
        dones[-1] = True
        _a2c_update(net, optimizer, (logits_t, values_t, actions_t), rewards, dones)

    return time_trials(play_trial, trials, batch * pulls, timer)


def _rl2_rollout(
    net: RecurrentActorCritic, arms: int, reset: torch.Tensor, dones: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """A ``no_grad`` GRU rollout of B whole trials and its PPO batch.

    The fused GRU recomputes the old log-probs and values over the trial; advantages are GAE
    (0.99, 0.3), normalised, and the value targets are the unnormalised advantages plus values.

    Args:
        net: the GRU actor-critic.
        arms: bandit arms.
        reset: (pulls, B), True at the first pull.
        dones: (pulls, B), True at the last pull.

    Returns:
        phi, the initial state h0, actions, old log-probs, advantages and value targets.
    """
    pulls, batch = reset.shape
    p, h0 = torch.rand(batch, arms), net.initial_state(batch, "cpu")
    phis, actions, rewards = [torch.zeros(batch, arms + 3)], [], []
    with torch.no_grad():
        state = h0
        for t in range(pulls):
            logits, _, state = net(phis[-1][None], state, reset[t : t + 1])
            actions.append(sample_actions(logits[0], None))
            chosen = p.gather(1, actions[-1][:, None]).squeeze(1)
            rewards.append((torch.rand(batch) < chosen).float())
            phis.append(_bandit_phi(actions[-1], rewards[-1], arms))
        phi, action, reward = torch.stack(phis[:-1]), torch.stack(actions), torch.stack(rewards)
        logits, values, _ = net(phi, h0, reset)
        old = torch.log_softmax(logits, -1).gather(2, action[..., None])[..., 0]
        advantages = gae(reward, values, dones, torch.zeros(batch), 0.99, 0.3)
        targets = advantages + values
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    return phi, h0, action, old, advantages, targets


def rl2_parity_steps_per_second(
    arms: int,
    pulls: int,
    batch: int,
    hidden: int,
    trials: int,
    epochs: int,
    minibatches: int,
    timer: IntervalTimer | None = None,
) -> float:
    """Env steps per second of a plain-PyTorch RL² loop at rl2's default PPO settings.

    Each batch is a rollout of B whole trials (:func:`_rl2_rollout`), then ``epochs`` passes of
    PPO over ``minibatches`` minibatches of whole trials, each recomputing the GRU over the trial
    with gradients.

    Args:
        arms: bandit arms.
        pulls: pulls per trial.
        batch: parallel bandits B (trials per PPO batch).
        hidden: GRU units.
        trials: measured batches of trials, after one warm-up batch.
        epochs: PPO passes per batch.
        minibatches: minibatches of whole trials per pass.
        timer: pools the intervals with earlier runs (rounds); the rate is over all of them.
    """
    torch.manual_seed(0)
    net = RecurrentActorCritic(arms + 3, arms, hidden, "gru", 0.01)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    reset = torch.zeros(pulls, batch, dtype=torch.bool)
    reset[0] = True
    dones = torch.roll(reset, -1, 0)

    def play_trial() -> None:
        phi, h0, action, old, advantages, targets = _rl2_rollout(net, arms, reset, dones)
        for _ in range(epochs):
            for i in torch.randperm(batch).tensor_split(minibatches):
                logits, values, _ = net(phi[:, i], tuple(h[:, i] for h in h0), reset[:, i])
                batch_i = (action[:, i], old[:, i], advantages[:, i], targets[:, i])
                loss, _ = ppo_clip_loss(logits, values, *batch_i, 0.2, 0.5, 0.03)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()

    return time_trials(play_trial, trials, batch * pulls, timer)


def a2c_parity_steps_per_second(
    arms: int, pulls: int, batch: int, hidden: int, trials: int, timer: IntervalTimer | None = None
) -> float:
    """Env steps per second of a plain-PyTorch A2C loop: the MLP on s alone, graph over a trial.

    Args:
        arms: bandit arms.
        pulls: pulls per trial (one update per trial).
        batch: parallel bandits B.
        hidden: units per MLP layer.
        trials: measured trials (updates), after one warm-up trial.
        timer: pools the intervals with earlier runs (rounds); the rate is over all of them.
    """
    torch.manual_seed(0)
    net = FeedForwardActorCritic(1, arms, hidden)
    optimizer = torch.optim.RMSprop(net.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    obs, dones = torch.zeros(batch, 1), torch.zeros(pulls, batch, dtype=torch.bool)
    dones[-1] = True

    def play_trial() -> None:
        p = torch.rand(batch, arms)
        logits_t, values_t, actions_t, rewards_t = [], [], [], []
        for _ in range(pulls):
            logits, values = net(obs)
            action = sample_actions(logits.detach(), None)
            chosen = p.gather(1, action[:, None]).squeeze(1)
            rewards_t.append((torch.rand(batch) < chosen).float())
            logits_t.append(logits), values_t.append(values), actions_t.append(action)
        rewards = torch.stack(rewards_t)
        _a2c_update(net, optimizer, (logits_t, values_t, actions_t), rewards, dones)

    return time_trials(play_trial, trials, batch * pulls, timer)
