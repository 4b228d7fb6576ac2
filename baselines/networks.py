"""Actor-critic networks: recurrent (LSTM or GRU) for meta-learners, feed-forward for A2C.

Each is a core (a recurrent cell, or an MLP) under the heads of :class:`baselines.heads.ActionHead`:
categorical logits or a diagonal Gaussian's mean, and a value.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from baselines.fast_gru import gru_sequence
from baselines.fast_lstm import LSTMFromRollout, lstm_step, step_weights
from baselines.heads import ActionHead

RecurrentState = tuple[torch.Tensor, ...]


def mask_state(state: RecurrentState, reset: torch.Tensor) -> RecurrentState:
    """Zero the hidden state of slots where ``reset`` is True (a trial boundary).

    Args:
        state: tensors [layers, n, hidden].
        reset: bool [n].
    """
    keep = (~reset).to(state[0].dtype).view(1, -1, 1)
    return tuple(part * keep for part in state)


class RecurrentActorCritic(ActionHead):
    """An LSTM or GRU core with a policy head and a value head.

    The parameters are ``nn.LSTM``/``nn.GRU``'s. A rollout steps with :meth:`step` (a lean cell);
    an update either replays the LSTM states the rollout stored (:meth:`replay`), or reruns the
    segment in :meth:`forward`: a GRU through :func:`baselines.fast_gru.gru_sequence`, an LSTM
    (and anything needing input gradients) through the fused module.

    Args:
        input_dim: width of phi.
        num_actions: number of discrete actions (the action vector's size when continuous).
        hidden_size: units in the recurrent core.
        cell: ``lstm`` or ``gru``.
        policy_init_gain: orthogonal-init gain of the policy head; None keeps PyTorch's default.
        continuous: a diagonal Gaussian policy head (mean and learned log-std) instead of logits.
    """

    def __init__(
        self,
        input_dim: int,
        num_actions: int,
        hidden_size: int,
        cell: str = "lstm",
        policy_init_gain: float | None = None,
        continuous: bool = False,
    ):
        super().__init__()
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.cell = cell
        self.hidden_size = hidden_size
        self.rnn = rnn_class(input_dim, hidden_size)
        self.init_heads(hidden_size, num_actions, policy_init_gain, continuous)

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
            logits [T, n, num_actions] (the Gaussian's mean when continuous), values [T, n] and
            the final hidden state.
        """
        if self._use_gru_sequence(inputs, state):
            features = self._gru_sequence(inputs, state[0][0], reset)
            return (*self._feature_major_heads(features), (features[-1:],))
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
        return (*self.heads(features), state)

    def _use_gru_sequence(self, inputs: torch.Tensor, state: RecurrentState) -> bool:
        """A GRU sequence under autograd whose inputs and initial state are data: the update's
        recomputation, which :func:`baselines.fast_gru.gru_sequence` back-propagates by hand."""
        return (
            self.cell == "gru"
            and torch.is_grad_enabled()
            and inputs.shape[0] > 1
            and not (inputs.requires_grad or state[0].requires_grad)
        )

    def _feature_major_heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads over features [T, n, H] stored feature-major ([T, H, n] underneath, as
        :func:`baselines.fast_gru.gru_sequence` returns them): one batched product, no copy of
        the features, and their gradient comes back feature-major as well."""
        weight, bias = self._step_weights()[2:]  # [A + 1, H] and [A + 1, 1]
        by_feature = features.transpose(1, 2)  # [T, H, n], contiguous
        heads = torch.bmm(weight.expand(len(features), -1, -1), by_feature) + bias
        return heads[:, :-1].transpose(1, 2), heads[:, -1]

    def _gru_sequence(self, inputs: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor):
        rnn = self.rnn
        keep = (~reset).to(inputs.dtype)
        params = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        return gru_sequence(inputs, h0, keep, *params)

    def step(
        self,
        phi: torch.Tensor,
        state: RecurrentState,
        reset: torch.Tensor,
        record: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """One rollout step of n slots: ``forward`` for a sequence of length 1, made lean.

        Args:
            phi: float [n, input_dim].
            state: the hidden state, tensors [1, n, hidden].
            reset: bool [n]; True where a trial starts at this step. None when no slot starts
                one (:attr:`tasks.StepView.no_trial_starts`): the state is carried unmasked.
            record: this step's rows of :meth:`replay_storage`, which an LSTM step writes its
                states and gates into (None: they stay in :meth:`replay_fields`).

        Returns:
            logits [n, num_actions] (the mean, if continuous), values [n] and the new state.
        """
        weights = self._step_weights()
        if reset is not None:
            # A multiply by the float mask: a broadcast masked_fill costs several times more here.
            keep = (~reset).to(phi.dtype)[None, :, None]
            state = tuple(part * keep for part in state)
        if self.cell == "lstm":
            h, c, gates = lstm_step(phi, state[0][0], state[1][0], *weights[:2], out=record)
            self.__dict__["last_gates"] = gates  # a plain attribute, without Module.__setattr__
            state = (h[None], c[None])
        else:
            rnn = self.rnn
            h = torch.gru_cell(
                phi, state[0][0], rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
            )
            state = (h[None],)
        # Both heads in one product, actions-major ([A + 1, n]): logits are returned as a
        # transposed view, which the samplers reduce along its contiguous rows.
        heads = torch.addmm(weights[3], weights[2], h.t())
        return heads[:-1].t(), heads[-1], state

    def _step_weights(self) -> tuple[torch.Tensor, ...]:
        """The step cell's weights and the two heads stacked, rebuilt only when a parameter has
        changed (every optimiser step bumps the parameters' version counters). Under autograd
        they are rebuilt every call, so gradients reach the parameters."""
        params = self.__dict__.get("_step_params")
        if params is None:  # the Parameter objects stay; .to() and loading change their data
            params = (self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0)
            params += (self.rnn.bias_hh_l0, self.policy_head.weight, self.policy_head.bias)
            params += (self.value_head.weight, self.value_head.bias)
            self.__dict__["_step_params"] = params
        # Versions only grow, so an equal sum means no parameter changed in place; .to() moves
        # every parameter's data, which the first one's address shows.
        key = (sum(p._version for p in params), params[0].data_ptr())
        cached = getattr(self, "_step_cache", None)
        if cached is not None and cached[0] == key and not torch.is_grad_enabled():
            return cached[1]
        weight, bias = step_weights(*params[:4]) if self.cell == "lstm" else (None, None)
        head_weight = torch.cat([params[4], params[6]])
        weights = (weight, bias, head_weight, torch.cat([params[5], params[7]])[:, None])
        if not torch.is_grad_enabled():
            self._step_cache = (key, weights)
        return weights

    def replay_storage(
        self, steps: int, batch: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Empty [steps, batch, ...] tensors for the :meth:`replay_fields` of a rollout, which
        :meth:`step` fills one row at a time when given ``record``. Empty for a GRU core."""
        if self.cell != "lstm":
            return {}
        hidden = self.hidden_size
        shapes = {"hidden": hidden, "cell": hidden, "gates": 4 * hidden}
        return {
            key: torch.empty(steps, batch, width, device=device) for key, width in shapes.items()
        }

    def replay_fields(self, state: RecurrentState) -> dict[str, torch.Tensor]:
        """What :meth:`replay` needs from the rollout step just taken by :meth:`step` (whose new
        state is ``state``): the LSTM's hidden and cell state and gate activations, [n, ...] each.
        Empty for a GRU core, whose update recomputes the segment."""
        if self.cell != "lstm":
            return {}
        return {"hidden": state[0][0], "cell": state[1][0], "gates": self.last_gates}

    def replay(
        self,
        inputs: torch.Tensor,
        stored: Mapping[str, torch.Tensor],
        state: RecurrentState,
        reset: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """``forward`` over a segment whose LSTM states the rollout stored, without rerunning it.

        Valid only while the parameters are those that played the rollout: the output is the
        stored hidden states, and the gradient is back-propagated through time from them (see
        :class:`baselines.fast_lstm.LSTMFromRollout`).

        Args:
            inputs: phi, float [T, n, input_dim].
            stored: the :meth:`replay_fields` of every step, stacked along time.
            state: the hidden state before the first step, tensors [1, n, hidden].
            reset: bool [T, n]; True at the first step of a trial.
        """
        rnn = self.rnn
        hidden, cell, gates = stored["hidden"], stored["cell"], stored["gates"]
        keep = (~reset).to(inputs.dtype)
        features = LSTMFromRollout.apply(
            inputs,
            hidden,
            cell,
            gates,
            state[0][0],
            state[1][0],
            keep,
            rnn.weight_ih_l0,
            rnn.weight_hh_l0,
            rnn.bias_ih_l0,
            rnn.bias_hh_l0,
        )
        final = (hidden[-1:], cell[-1:])
        return (*self.heads(features), final)

    def rerun(
        self, segment: Mapping[str, torch.Tensor], current: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A stored rollout segment again, with gradients: :meth:`replay` of its LSTM states when
        it stored them and ``current`` (these parameters played it), else :meth:`forward` from its
        initial state ``h0``.

        Returns logits [T, n, A] and values [T, n] with gradients, and the critic's value at the
        step after the segment (no gradient), which bootstraps a return cut mid-trial.
        """
        inputs, state, reset = segment["phi"], tuple(segment["h0"]), segment["reset"]
        if current and "hidden" in segment:
            logits, values, state = self.replay(inputs, segment, state, reset)
        else:
            logits, values, state = self(inputs, state, reset)
        with torch.no_grad():
            bootstrap = self.step(segment["phi_last"], state, segment["reset_last"])[1]
        return logits, values, bootstrap

    def _run(self, inputs: torch.Tensor, state: RecurrentState):
        if self.cell == "lstm":
            out, (h, c) = self.rnn(inputs, state)
            return out, (h, c)
        out, h = self.rnn(inputs, state[0])
        return out, (h,)


class FeedForwardActorCritic(ActionHead):
    """A memoryless MLP actor-critic over the observation alone (the non-meta baseline).

    Args:
        input_dim: width of the observation s (not phi).
        num_actions: number of discrete actions (the action vector's size when continuous).
        hidden_size: units per hidden layer (two layers).
        policy_init_gain: orthogonal-init gain of the policy head; None keeps PyTorch's default.
        continuous: a diagonal Gaussian policy head (mean and learned log-std) instead of logits.
    """

    def __init__(
        self,
        input_dim: int,
        num_actions: int,
        hidden_size: int,
        policy_init_gain: float | None = None,
        continuous: bool = False,
    ):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(input_dim, hidden_size),
            nn.Tanh(),
            nn.Linear(hidden_size, hidden_size),
            nn.Tanh(),
        )
        self.init_heads(hidden_size, num_actions, policy_init_gain, continuous)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [..., num_actions] (the mean, if continuous) and values [...] of obs [..., in]."""
        features = self.body(obs)
        return self.heads(features)
