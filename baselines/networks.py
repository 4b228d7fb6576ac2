"""Actor-critic networks: recurrent (LSTM or GRU) for meta-learners, feed-forward for A2C."""

from __future__ import annotations

import torch
from torch import nn

RecurrentState = tuple[torch.Tensor, ...]


def mask_state(state: RecurrentState, reset: torch.Tensor) -> RecurrentState:
    """Zero the hidden state of slots where ``reset`` is True (a trial boundary).

    Args:
        state: tensors [layers, n, hidden].
        reset: bool [n].
    """
    keep = (~reset).to(state[0].dtype).view(1, -1, 1)
    return tuple(part * keep for part in state)


class RecurrentActorCritic(nn.Module):
    """An LSTM or GRU core with a policy head and a value head.

    The same fused ``nn.LSTM``/``nn.GRU`` serves the step-by-step rollout (sequence length 1) and
    the recomputation of a whole segment for the update.

    Args:
        input_dim: width of phi.
        num_actions: number of discrete actions.
        hidden_size: units in the recurrent core.
        cell: ``lstm`` or ``gru``.
        policy_init_gain: orthogonal-init gain of the policy head; None keeps PyTorch's default.
    """

    def __init__(
        self,
        input_dim: int,
        num_actions: int,
        hidden_size: int,
        cell: str = "lstm",
        policy_init_gain: float | None = None,
    ):
        super().__init__()
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.cell = cell
        self.hidden_size = hidden_size
        self.rnn = rnn_class(input_dim, hidden_size)
        self.policy_head = nn.Linear(hidden_size, num_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        if policy_init_gain is not None:
            nn.init.orthogonal_(self.policy_head.weight, gain=policy_init_gain)
            nn.init.zeros_(self.policy_head.bias)

    def initial_state(self, batch_size: int, device: torch.device | str) -> RecurrentState:
        """An all-zero hidden state for ``batch_size`` slots."""
        zeros = torch.zeros(1, batch_size, self.hidden_size, device=device)
        return (zeros, zeros.clone()) if self.cell == "lstm" else (zeros,)

    def forward(
        self, inputs: torch.Tensor, state: RecurrentState, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """Run a sequence, zeroing the hidden state of a slot before any step where it resets.

        Args:
            inputs: phi, float [T, n, input_dim].
            state: the hidden state before the first step.
            reset: bool [T, n]; True at the first step of a trial.

        Returns:
            logits [T, n, num_actions], values [T, n] and the final hidden state.
        """
        state = mask_state(state, reset[0])
        if inputs.shape[0] == 1 or not bool(reset[1:].any()):
            # No trial boundary inside the segment: one fused call over the whole sequence.
            features, state = self._run(inputs, state)
        else:
            outputs = []
            for t in range(inputs.shape[0]):
                state = mask_state(state, reset[t])
                out, state = self._run(inputs[t : t + 1], state)
                outputs.append(out)
            features = torch.cat(outputs)
        return self.policy_head(features), self.value_head(features).squeeze(-1), state

    def _run(self, inputs: torch.Tensor, state: RecurrentState):
        if self.cell == "lstm":
            out, (h, c) = self.rnn(inputs, state)
            return out, (h, c)
        out, h = self.rnn(inputs, state[0])
        return out, (h,)


class FeedForwardActorCritic(nn.Module):
    """A memoryless MLP actor-critic over the observation alone (the non-meta baseline).

    Args:
        input_dim: width of the observation s (not phi).
        num_actions: number of discrete actions.
        hidden_size: units per hidden layer (two layers).
    """

    def __init__(self, input_dim: int, num_actions: int, hidden_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(input_dim, hidden_size),
            nn.Tanh(),
            nn.Linear(hidden_size, hidden_size),
            nn.Tanh(),
        )
        self.policy_head = nn.Linear(hidden_size, num_actions)
        self.value_head = nn.Linear(hidden_size, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits [..., num_actions] and values [...] for observations [..., input_dim]."""
        features = self.body(obs)
        return self.policy_head(features), self.value_head(features).squeeze(-1)
