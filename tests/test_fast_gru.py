"""The GRU fast path against nn.GRU's autograd: same states, same gradients."""

from __future__ import annotations

import pytest
import torch

from baselines.fast_gru import CHUNK, gru_sequence
from baselines.networks import RecurrentActorCritic

INPUTS, HIDDEN, BATCH = 6, 5, 4
STEPS = 2 * CHUNK + 3  # several chunks of the backward, the first one short


def _reference(gru: torch.nn.GRU, x, h0, keep):
    """nn.GRU one step at a time, zeroing the state where keep is 0: differentiable."""
    h, outputs = h0[None], []
    for t in range(x.shape[0]):
        out, h = gru(x[t : t + 1], h * keep[t].view(1, -1, 1))
        outputs.append(out[0])
    return torch.stack(outputs)


def _graph_nodes(node) -> set[str]:
    """The names of the autograd nodes behind ``node``."""
    seen, stack = {}, [node]
    while stack:
        node = stack.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = type(node).__name__
            stack.extend(next_node for next_node, _ in node.next_functions)
    return set(seen.values())


def _keep(resets_inside: bool) -> torch.Tensor:
    keep = torch.ones(STEPS, BATCH, dtype=torch.double)
    keep[0, 1] = 0.0  # a trial starts at step 0 in one slot
    if resets_inside:
        keep[4, 0] = keep[CHUNK + 4, 2] = keep[STEPS - 1, 3] = 0.0
    return keep


@pytest.mark.parametrize("resets_inside", [True, False])
def test_states_and_parameter_gradients_match_nn_gru(resets_inside):
    torch.manual_seed(0)
    gru = torch.nn.GRU(INPUTS, HIDDEN).double()
    x = torch.randn(STEPS, BATCH, INPUTS, dtype=torch.double)
    h0 = torch.randn(BATCH, HIDDEN, dtype=torch.double)
    keep = _keep(resets_inside)
    weights = torch.randn(STEPS, BATCH, HIDDEN, dtype=torch.double)  # a loss that weighs every h
    params = [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0]

    expected = _reference(gru, x, h0, keep)
    expected_grads = torch.autograd.grad((expected * weights).sum(), params)
    states = gru_sequence(x, h0, keep, *params)
    grads = torch.autograd.grad((states * weights).sum(), params)

    torch.testing.assert_close(states, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_the_network_uses_it_for_gru_updates_and_matches_the_fused_gru():
    torch.manual_seed(1)
    network = RecurrentActorCritic(INPUTS, 3, HIDDEN, "gru")
    phi = torch.randn(STEPS, BATCH, INPUTS)
    reset = torch.zeros(STEPS, BATCH, dtype=torch.bool)
    reset[0] = True
    state = network.initial_state(BATCH, "cpu")

    logits, values, final = network(phi, state, reset)  # grad enabled: the fast path
    loss = logits.logsumexp(-1).sum() + values.pow(2).sum()
    fast = torch.autograd.grad(loss, list(network.parameters()))
    assert "GRUSequenceBackward" in _graph_nodes(values.grad_fn)

    out, h = network.rnn(phi, state[0])  # the fused nn.GRU, the same trial from its zero state
    torch.testing.assert_close(final[0], h)
    heads = network.policy_head(out), network.value_head(out).squeeze(-1)
    torch.testing.assert_close(logits, heads[0])
    loss = heads[0].logsumexp(-1).sum() + heads[1].pow(2).sum()
    fused = torch.autograd.grad(loss, list(network.parameters()))
    for grad, expected in zip(fast, fused, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)
