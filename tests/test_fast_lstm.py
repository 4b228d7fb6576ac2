"""The LSTM fast path against nn.LSTM's autograd: same states, same gradients."""

from __future__ import annotations

import pytest
import torch

from baselines.fast_lstm import LSTMFromRollout, lstm_step, step_weights
from baselines.networks import RecurrentActorCritic
from baselines.rollout import RolloutCollector
from benchmark.run.config import load_run_config
from benchmark.run.runner import build_module

INPUTS, HIDDEN, STEPS, BATCH = 6, 5, 9, 4


def _play(lstm: torch.nn.LSTM, x, h0, c0, keep):
    """nn.LSTM one step at a time with resets: the reference, differentiable."""
    h, c, outputs, cells = h0, c0, [], []
    for t in range(x.shape[0]):
        mask = keep[t].view(1, -1, 1)
        out, (h, c) = lstm(x[t : t + 1], (h * mask, c * mask))
        outputs.append(out[0]), cells.append(c[0])
    return torch.stack(outputs), torch.stack(cells)


@torch.no_grad()
def _rollout(params, x, h, c, keep):
    """The step cell over the sequence: hidden states, cell states and gate activations."""
    weights = step_weights(*params)
    outputs = []
    for t in range(x.shape[0]):
        mask = keep[t].unsqueeze(1)
        h, c, gates = lstm_step(x[t], h * mask, c * mask, *weights)
        outputs.append((h, c, gates))
    return tuple(torch.stack(part) for part in zip(*outputs, strict=True))


@pytest.fixture
def sequence():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(INPUTS, HIDDEN).double()
    x = torch.randn(STEPS, BATCH, INPUTS, dtype=torch.double)
    h0 = torch.randn(1, BATCH, HIDDEN, dtype=torch.double)
    c0 = torch.randn(1, BATCH, HIDDEN, dtype=torch.double)
    keep = torch.ones(STEPS, BATCH, dtype=torch.double)
    keep[0, 1] = keep[4, 0] = keep[4, 2] = keep[7, 3] = 0.0  # trial boundaries, one at step 0
    keep[1, 2] = 0.0  # and one on the first step of the last chunk of the backward
    return lstm, x, h0, c0, keep


def test_the_step_cell_is_nn_lstm(sequence):
    lstm, x, h0, c0, _ = sequence
    weights = step_weights(lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    h, c, _ = lstm_step(x[0], h0[0], c0[0], *weights)
    _, (h_ref, c_ref) = lstm(x[:1], (h0, c0))
    torch.testing.assert_close(h, h_ref[0])
    torch.testing.assert_close(c, c_ref[0])


@pytest.mark.parametrize("resets_inside", [True, False])
def test_bptt_from_stored_states_matches_autograd(sequence, resets_inside):
    lstm, x, h0, c0, keep = sequence
    if not resets_inside:
        keep[1:] = 1.0  # trials start only at the first step (whole-trial segments)
    params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    upstream = torch.randn(STEPS, BATCH, HIDDEN, dtype=torch.double)
    hidden, cells = _play(lstm, x, h0, c0, keep)
    reference = torch.autograd.grad((hidden * upstream).sum(), params)
    stored = _rollout(params, x, h0[0], c0[0], keep)  # what the rollout keeps, step cell
    torch.testing.assert_close(stored[0], hidden.detach())
    torch.testing.assert_close(stored[1], cells.detach())
    replayed = LSTMFromRollout.apply(x, *stored, h0[0], c0[0], keep, *params)
    torch.testing.assert_close(replayed, hidden.detach())
    ours = torch.autograd.grad((replayed * upstream).sum(), params)
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-9)


def test_lstm_a2c_update_replays_the_rollout_with_the_fused_gradient():
    """Segments shorter than a trial (resets inside, carried h0): replay == fused recompute."""
    spec = load_run_config(
        "lstm-a2c",
        "bernoulli-bandit",
        ["task.pulls=6", "algo.batch_size=5", "algo.rollout_steps=4"],
    )
    module = build_module(spec)
    collector = RolloutCollector(module, seed=0)
    collector.collect(4)
    batch = collector.collect(4)  # starts mid-trial with a carried state, resets at step 2
    assert batch["reset"][2].all() and batch["h0"][0].abs().sum() > 0
    assert module.can_replay(batch)
    fused = {k: v for k, v in batch.items() if k not in ("hidden", "cell", "gates")}
    assert not module.can_replay(fused)
    gradients = []
    for candidate in (batch, fused):
        module.zero_grad()
        logits, values, bootstrap = module.recompute(candidate)
        (logits.square().sum() + values.sum() + bootstrap.sum()).backward()
        gradients.append([p.grad.clone() for p in module.network.parameters()])
    for replayed, recomputed in zip(*gradients, strict=True):
        torch.testing.assert_close(replayed, recomputed, rtol=1e-4, atol=1e-5)


def test_a_rollout_from_older_parameters_is_recomputed():
    spec = load_run_config("lstm-a2c", "bernoulli-bandit", ["task.pulls=4", "algo.batch_size=2"])
    module = build_module(spec)
    batch = RolloutCollector(module, seed=0).collect(4)
    assert module.can_replay(batch)
    assert not module.can_replay({**batch, "policy_version": module.policy_version - 1})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_rollout_step_is_the_network_forward_and_follows_parameter_updates(cell):

    torch.manual_seed(0)
    net = RecurrentActorCritic(INPUTS, 3, HIDDEN, cell)
    phi = torch.randn(BATCH, INPUTS)
    state = tuple(torch.randn(1, BATCH, HIDDEN) for _ in range(2 if cell == "lstm" else 1))
    reset = torch.tensor([True, False, False, True])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(2):  # the second round runs after an update: no stale cached weights
        with torch.no_grad():
            logits, values, new_state = net.step(phi, state, reset)
            ref_logits, ref_values, ref_state = net(phi[None], state, reset[None])
        torch.testing.assert_close(logits, ref_logits[0])
        torch.testing.assert_close(values, ref_values[0])
        for mine, theirs in zip(new_state, ref_state, strict=True):
            torch.testing.assert_close(mine, theirs)
        optimizer.zero_grad()
        net(phi[None], state, reset[None])[0].sum().backward()
        optimizer.step()


def test_rl2_targets_use_the_rollouts_own_log_probs_and_values():
    spec = load_run_config("rl2", "bernoulli-bandit", ["task.pulls=5", "algo.batch_size=6"])
    module = build_module(spec)
    batch = RolloutCollector(module, seed=0).collect(5)
    stored = module.behaviour_outputs(batch)
    recomputed = module.behaviour_outputs({**batch, "policy_version": -1})
    for mine, theirs in zip(stored, recomputed, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("actions_major", [True, False])
def test_sampling_with_log_prob_is_the_same_draw_as_sample_actions(actions_major):
    from baselines.policy import (
        categorical_log_prob,
        sample_actions,
        sample_actions_by_column,
        sample_actions_with_log_prob,
    )

    logits = torch.randn(7, 300).t() if actions_major else torch.randn(300, 7)
    actions, log_probs = sample_actions_with_log_prob(logits, torch.Generator().manual_seed(3))
    expected = sample_actions(logits, torch.Generator().manual_seed(3))
    assert torch.equal(actions, expected) and len(set(actions.tolist())) == 7
    by_column = sample_actions_by_column(logits, torch.Generator().manual_seed(3))
    assert torch.equal(by_column, expected)
    torch.testing.assert_close(log_probs, categorical_log_prob(logits, actions))


def test_a_rollout_step_writes_its_states_into_the_storage_rows():
    """With ``record`` (rows of ``replay_storage``) the LSTM step writes what ``replay_fields``
    would return into the storage, and its outputs are unchanged."""
    net = RecurrentActorCritic(9, 5, 16, "lstm")
    storage = net.replay_storage(3, 4, "cpu")
    assert {key: tuple(rows.shape) for key, rows in storage.items()} == {
        "hidden": (3, 4, 16),
        "cell": (3, 4, 16),
        "gates": (3, 4, 64),
    }
    phi, state = torch.rand(4, 9), (torch.rand(1, 4, 16), torch.rand(1, 4, 16))
    reset = torch.tensor([True, False, False, True])
    with torch.no_grad():
        logits, values, plain_state = net.step(phi, state, reset)
        expected = net.replay_fields(plain_state)
        record = {key: rows[1] for key, rows in storage.items()}
        logits_rec, values_rec, state_rec = net.step(phi, state, reset, record)
    for key, value in expected.items():
        torch.testing.assert_close(storage[key][1], value)
    torch.testing.assert_close(logits_rec, logits)
    torch.testing.assert_close(values_rec, values)
    assert state_rec[0].data_ptr() == storage["hidden"][1].data_ptr()  # written in place
    assert RecurrentActorCritic(9, 5, 16, "gru").replay_storage(3, 4, "cpu") == {}
