"""The GRU fast path for updates that rerun a sequence with gradients (RL²'s PPO epochs).

PPO recomputes RL²'s GRU over whole trials, with backpropagation through time, once per minibatch
and epoch. PyTorch's CPU GRU runs each step batch-major, on [B, 3H] tensors whose gate slices are
strided (element-wise ops on strided slices take the slow path), and records about a dozen
autograd nodes per step. :class:`GRUSequence` keeps the state feature-major ([H, B]), so that every
gate is a contiguous block of rows, and back-propagates through time by hand from the activations
its forward stored: about six small ops per step each way, and the weight gradients as batched
products over the whole sequence.

Equations and gate order are ``nn.GRU``'s (r, z, n), with the state zeroed before step t where
``keep[t]`` is 0 (a trial boundary):

    h'_{t-1} = keep_t h_{t-1}
    r = sigmoid(W_ir x + b_ir + W_hr h' + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h' + b_hz)
    n = tanh(W_in x + b_in + r (W_hn h' + b_hn)),  h_t = n + z (h' - n)

The gradients match ``nn.GRU``'s autograd to float rounding (tests/test_fast_gru.py). Gradients
flow to the four parameters only: the inputs and the initial state are data (phi and a stored
state); :meth:`baselines.networks.RecurrentActorCritic.forward` uses ``nn.GRU`` when either
needs a gradient.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

CHUNK = 10
"""Steps whose backward factors are computed together (sized to stay in cache)."""


def gru_sequence(
    x: torch.Tensor,
    h0: torch.Tensor,
    keep: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> torch.Tensor:
    """The hidden states [T, B, H] of a one-layer GRU over x [T, B, in] from h0 [B, H].

    Args:
        x: the inputs, float [T, B, in].
        h0: the state before the first step, [B, H].
        keep: float [T, B]; 0.0 where the state is zeroed before step t, else 1.0.
        weight_ih, weight_hh, bias_ih, bias_hh: ``nn.GRU``'s parameters of layer 0.
    """
    return GRUSequence.apply(x, h0, keep, weight_ih, weight_hh, bias_ih, bias_hh)


class GRUSequence(torch.autograd.Function):
    """:func:`gru_sequence` with a hand-written backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, h0, keep, weight_ih, weight_hh, bias_ih, bias_hh):
        steps, batch, _ = x.shape
        hidden = weight_hh.shape[1]
        # The input projections of all steps at once, feature-major [T, 3H, B], with b_h's r and
        # z blocks (b_hn is inside the candidate's product with r, so it stays with W_h h').
        bias = bias_ih + torch.cat([bias_hh[: 2 * hidden], bias_hh.new_zeros(hidden)])
        inputs = x.transpose(1, 2).contiguous()
        projected = torch.bmm(weight_ih.expand(steps, -1, -1), inputs).add_(bias[:, None])
        from_state = x.new_empty(steps, 3 * hidden, batch)  # W_h h' + b_h
        gates = x.new_empty(steps, 3 * hidden, batch)  # r, z, n
        states = x.new_empty(steps + 1, hidden, batch)  # h' before step 0, then h_0 .. h_T-1
        resets_inside = not bool(keep[1:].all())
        torch.mul(h0.t(), keep[0], out=states[0])
        _gru_forward(
            _blocks(projected, hidden, 2, 1),
            _blocks(from_state, hidden, 2, 1),
            [_blocks(gates, hidden, 2)[1], *_blocks(gates, hidden, 1, 1, 1)[1:]],
            states.unbind(0),
            keep.unbind(0) if resets_inside else None,
            weight_hh,
            bias_hh[2 * hidden :, None],
        )
        ctx.save_for_backward(x, keep, weight_hh, states, from_state, gates)
        ctx.resets_inside = resets_inside
        return states[1:].transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, keep, weight_hh, states, from_state, gates = ctx.saved_tensors
        # h' before each step (states[0] is already masked)
        previous = states[:-1] * keep[:, None, :] if ctx.resets_inside else states[:-1]
        grad_gates, grad_candidate = gru_bptt(
            grad_out.transpose(1, 2).contiguous(),
            keep if ctx.resets_inside else None,
            weight_hh,
            previous,
            from_state,
            gates,
        )
        hidden = weight_hh.shape[1]
        grad_weight_hh = torch.bmm(grad_gates, previous.transpose(1, 2)).sum(0)
        grad_bias_hh = grad_gates.sum((0, 2))
        # The input projection's gradient is grad_gates' r and z blocks and grad_candidate.
        grad_weight_ih = torch.cat(
            [torch.bmm(grad_gates[:, : 2 * hidden], x).sum(0), torch.bmm(grad_candidate, x).sum(0)]
        )
        grad_bias_ih = torch.cat([grad_bias_hh[: 2 * hidden], grad_candidate.sum((0, 2))])
        return None, None, None, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh


def _blocks(tensor: torch.Tensor, hidden: int, *widths: int) -> list[tuple[torch.Tensor, ...]]:
    """Per-step views of consecutive row blocks of ``tensor`` [T, rows, B], each ``width * hidden``
    rows, and first of all rows: ``[all[t], block_1[t], ...]``. Views are made once per sequence
    (``unbind``), not per step: indexing in Python costs microseconds per view."""
    views, start = [tensor.unbind(0)], 0
    for width in widths:
        views.append(tensor[:, start * hidden : (start + width) * hidden].unbind(0))
        start += width
    return views


def _gru_forward(projected, from_state, gates, states, keep, weight_hh, bias_hn):
    """The forward recursion over per-step views (see :func:`_blocks`): fills ``from_state``
    (W_h h', and b_hn in its n block), ``gates`` (r, z, n) and ``states`` (h_t at t + 1),
    masking the state by ``keep`` [B] per step unless it is None. ``projected`` holds the input
    projections plus the biases of r and z; ``bias_hn`` is a column [H, 1]."""
    _, projected_rz, projected_n = projected
    from_state_all, from_state_rz, from_state_n = from_state
    gates_rz, r, z, n = gates
    for t in range(len(projected_rz)):
        state = states[t] if keep is None or t == 0 else states[t] * keep[t]
        torch.mm(weight_hh, state, out=from_state_all[t])
        from_state_n[t].add_(bias_hn)
        torch.add(projected_rz[t], from_state_rz[t], out=gates_rz[t]).sigmoid_()
        torch.addcmul(projected_n[t], r[t], from_state_n[t], out=n[t]).tanh_()
        # h = n + z (h' - n)
        torch.addcmul(n[t], z[t], state, out=states[t + 1]).addcmul_(z[t], n[t], value=-1.0)


@torch.no_grad()
def gru_bptt(grad_h, keep, weight_hh, previous, from_state, gates):
    """Back-propagate ``grad_h`` [T, H, B] (feature-major) through a GRU's stored activations.

    ``previous`` [T, H, B] holds h' (the masked state before each step), ``from_state`` and
    ``gates`` [T, 3H, B] what the forward stored, ``keep`` [T, B] the mask (None when no trial
    starts after the first step: nothing to mask).

    The factors that do not depend on the incoming gradient are computed :data:`CHUNK` steps at a
    time; the recursion then costs five small ops and one product per step.

    Returns:
        the gradient of ``from_state`` (W_h h' + b_h) [T, 3H, B] and of the candidate's
        pre-activation [T, H, B] (the n block of the input projection's gradient; its r and z
        blocks equal those of the first).
    """
    steps, hidden, batch = grad_h.shape
    grad_gates = grad_h.new_empty(steps, 3 * hidden, batch)
    grad_candidate = grad_h.new_empty(steps, hidden, batch)
    grad_all, grad_r, grad_z, grad_hn = _blocks(grad_gates, hidden, 1, 1, 1)
    weight_hh_t = weight_hh.t()
    upstream = grad_h.unbind(0)
    grad = upstream[-1]  # all that reaches h_t: the loss's gradient and what step t + 1 carries
    for end in range(steps, 0, -CHUNK):
        span = slice(max(0, end - CHUNK), end)
        factors = _chunk_factors(previous[span], from_state[span], gates[span])
        for t, step in reversed(list(enumerate(range(span.start, span.stop)))):
            z_factor, hn_factor, candidate_factor, r_factor, z = (factor[t] for factor in factors)
            torch.mul(grad, z_factor, out=grad_z[step])
            torch.mul(grad, hn_factor, out=grad_hn[step])
            candidate = torch.mul(grad, candidate_factor, out=grad_candidate[step])
            torch.mul(candidate, r_factor, out=grad_r[step])
            if step == 0:
                break
            if keep is None:  # h_{t-1}'s gradient: its own, plus g z, plus W_h^T d gates
                direct = torch.addcmul(upstream[step - 1], grad, z)
                grad = torch.addmm(direct, weight_hh_t, grad_all[step])
            else:
                carried = torch.addmm(grad * z, weight_hh_t, grad_all[step]).mul_(keep[step])
                grad = upstream[step - 1] + carried
    return grad_gates, grad_candidate


def _chunk_factors(previous, from_state, gates):
    """Per-step factors of the GRU backward for a chunk of K steps, each unbound along K.

    With g the gradient reaching h_t, a_r, a_z, a_n the gates' pre-activations and a_hn the n
    block of W_h h' + b_h, the step's gradients are

    - d a_z = g (h' - n) z (1 - z), and d a_hn = g (1 - z)(1 - n^2) r;
    - d a_n = g (1 - z)(1 - n^2);
    - d a_r = d a_n a_hn r (1 - r);
    - and the direct part of d h' is g z.
    """
    steps, hidden, batch = previous.shape
    r, z, n = gates.view(steps, 3, hidden, batch).unbind(1)
    candidate_factor = (1.0 - z) * (1.0 - n * n)
    z_factor = (previous - n) * (z - z * z)
    hn_factor = candidate_factor * r
    r_factor = from_state[:, 2 * hidden :] * (r - r * r)
    factors = (z_factor, hn_factor, candidate_factor, r_factor, z)
    return tuple(factor.unbind(0) for factor in factors)
