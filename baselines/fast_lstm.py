"""The LSTM fast path of on-policy updates: a lean step cell, and BPTT from the rollout's states.

An A2C update differentiates its loss at the parameters that played the rollout. The rollout has
already computed every hidden and cell state, so the update need not run the LSTM forward again:
:class:`LSTMFromRollout` returns the stored hidden states as the sequence's output and, in its
backward, back-propagates through time one step at a time, recomputing that step's gates from
``(x_t, h_{t-1})``. Each step's working set (B x 4H floats) stays in cache, where PyTorch's fused
CPU LSTM streams whole-sequence tensors through memory in its forward and again in its backward.

Gate order and equations are PyTorch's ``nn.LSTM`` (i, f, g, o; one bias pair), so the gradients
match ``nn.LSTM``'s autograd to float rounding (tested). The caller guarantees the states were
produced by the current parameters (``MetaRLAlgorithm`` checks the rollout's policy version).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def stacked_weight(weight_ih: torch.Tensor, weight_hh: torch.Tensor) -> torch.Tensor:
    """``[W_ih | W_hh]`` transposed, [in + H, 4H]: one matmul of ``[x, h]`` gives the gates."""
    return torch.cat([weight_ih, weight_hh], 1).t()


def step_weights(
    weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor, bias_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight [in + H, 4H] and bias [4H] of :func:`lstm_step`, from ``nn.LSTM``'s parameters.

    The gate columns are reordered to (i, f, o, g), and the cell candidate's are doubled: with
    tanh(z) = 2 sigmoid(2z) - 1, one sigmoid over the contiguous gates serves all four.
    """
    order = [0, 1, 3, 2]
    scale = torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=weight_ih.dtype, device=weight_ih.device)
    weight = stacked_weight(weight_ih, weight_hh)
    hidden = weight.shape[1] // 4
    weight = (weight.view(-1, 4, hidden)[:, order] * scale[:, None]).reshape(-1, 4 * hidden)
    bias = ((bias_ih + bias_hh).view(4, hidden)[order] * scale[:, None]).reshape(-1)
    return weight, bias


def lstm_step(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    out: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM step, as ``nn.LSTM`` computes it.

    Args:
        x: input [B, in].
        h, c: hidden and cell state [B, H].
        weight, bias: from :func:`step_weights`.
        out: optional ``hidden``, ``cell`` and ``gates`` tensors to write the results into (one
            step's rows of a rollout's storage), which saves stacking them afterwards.

    Returns:
        the new ``(h, c)`` and the gates' activations [B, 4H] (i, f, o and sigmoid(2 z_g)),
        which the backward of :class:`LSTMFromRollout` reuses.
    """
    out = out or {}
    xh = torch.cat([x, h], 1)
    gates = torch.addmm(bias, xh, weight, out=out.get("gates")).sigmoid_()
    i, f, o, g_half = gates.chunk(4, 1)
    # c' = f c + i g with g = 2 g_half - 1
    c = torch.addcmul(torch.addcmul(-i, f, c), i, g_half, value=2.0, out=out.get("cell"))
    return torch.mul(o, c.tanh(), out=out.get("hidden")), c, gates


class LSTMFromRollout(torch.autograd.Function):
    """The output sequence of an LSTM whose states the rollout already computed.

    ``forward(x, h, c, gates, h0, c0, keep, weight_ih, weight_hh, bias_ih, bias_hh)`` with x
    [T, B, in]; h, c [T, B, H] and gates [T, B, 4H] (the states after each step and the gate
    activations, as :func:`lstm_step` returns them); h0 and c0 [B, H] (before the first step) and
    keep [T, B] (0.0 where the state was zeroed before step t, at a trial boundary). Returns h;
    gradients flow to the four parameters only (the states are data, as in truncated BPTT).
    """

    @staticmethod
    def forward(ctx, x, h, c, gates, h0, c0, keep, weight_ih, weight_hh, bias_ih, bias_hh):
        ctx.save_for_backward(x, h, c, gates, h0, c0, keep, weight_hh)
        return h.clone()

    @staticmethod
    def backward(ctx, grad_h):
        x, h, c, gates, h0, c0, keep, weight_hh = ctx.saved_tensors
        grad_weight, grad_bias = lstm_bptt(grad_h, x, h, c, gates, h0, c0, keep, weight_hh)
        inputs = x.shape[-1]
        grad_ih, grad_hh = grad_weight[:inputs].t(), grad_weight[inputs:].t()
        return None, None, None, None, None, None, None, grad_ih, grad_hh, grad_bias, grad_bias


CHUNK = 8
"""Steps whose gate factors are computed together in the backward (sized to stay in cache)."""


@torch.no_grad()
def lstm_bptt(grad_h, x, h, c, gates, h0, c0, keep, weight_hh):
    """Back-propagate ``grad_h`` [T, B, H] through an LSTM's stored states and activations.

    Everything that does not depend on the incoming gradient (the gates' derivatives) is computed
    for :data:`CHUNK` steps at a time; the step-by-step recursion then costs a handful of small
    ops per step. The weight gradient is one matrix product per chunk.

    Returns the gradient of the stacked weight [in + H, 4H] (see :func:`stacked_weight`) and of
    the bias [4H] (the same for ``bias_ih`` and ``bias_hh``). Arguments as in
    :class:`LSTMFromRollout`.
    """
    steps, batch, hidden = h.shape
    keep = keep.unsqueeze(-1)
    # The steps where some slot's state was zeroed (one read of the mask). Only their rows of the
    # previous states need masking; where no trial starts after the first step, the carried
    # gradients need none either (and what the first step would carry, into h0 and c0, is not
    # wanted: the states are data).
    reset_steps = [t for t, kept in enumerate(keep.flatten(1).all(1).tolist()) if not kept]
    resets_inside = any(t > 0 for t in reset_steps)
    grad_weight = x.new_zeros(x.shape[-1] + hidden, 4 * hidden)
    grad_bias = x.new_zeros(4 * hidden)
    carry_h, carry_c = torch.zeros_like(h0), torch.zeros_like(c0)
    workspace = _chunk_workspace(x, x.shape[-1], hidden)
    for end in range(steps, 0, -CHUNK):
        span = slice(max(0, end - CHUNK), end)
        chunk = {key: buffer[: end - span.start] for key, buffer in workspace.items()}
        masked = [t - span.start for t in reset_steps if span.start <= t < end]
        h_prev = _previous_states(h, h0, span, keep, masked)
        c_prev = _previous_states(c, c0, span, keep, masked)
        inputs = torch.cat([x[span], h_prev], -1, out=chunk["inputs"])
        carry_keep = keep[span] if resets_inside else None
        factors = _gate_factors(gates[span], c_prev, c[span], carry_keep, chunk)
        grad_gates = chunk["grad_gates"]
        carry_h, carry_c = _chunk_back(
            grad_h[span], carry_h, carry_c, factors, grad_gates, weight_hh, carry_keep, span.start
        )
        flat = grad_gates.view(-1, 4 * hidden)
        grad_weight.addmm_(inputs.view(-1, inputs.shape[-1]).t(), flat)
        grad_bias += flat.sum(0)
    return grad_weight, grad_bias


def _previous_states(states, initial, span, keep, masked):
    """The states [K, B, H] before each step of ``span`` (``initial`` before step 0), zeroed
    where ``keep`` [T, B, 1] is 0 on the ``masked`` steps (indices within the span): the mask is
    applied row by row, only where a trial started, instead of over the whole sequence."""
    if span.start == 0:
        previous = torch.cat([initial[None], states[: span.stop - 1]])
    else:
        previous = states[span.start - 1 : span.stop - 1]
        previous = previous.clone() if masked else previous
    for row in masked:
        previous[row] *= keep[span.start + row]
    return previous


def _chunk_workspace(like, inputs, hidden):
    """The buffers of one chunk of the backward, [CHUNK, B, ...] each, allocated once and reused
    by every chunk."""
    widths = {"slope": (4, hidden), "from_c": (3, hidden), "grad_gates": (4, hidden)}
    widths.update(inputs=(inputs + hidden,), tanh_c=(hidden,), scratch=(hidden,))
    widths.update(c_from_h=(hidden,), from_h=(hidden,), carry_c=(hidden,))
    return {key: like.new_empty(CHUNK, like.shape[1], *width) for key, width in widths.items()}


def _gate_factors(gates, c_prev, c, keep, out):
    """Per-step factors of the LSTM backward for a chunk of steps (all [K, B, ...]), written
    into the chunk's ``out`` buffers of :func:`_chunk_workspace`.

    ``gates`` are :func:`lstm_step`'s activations (i, f, o and s_g = sigmoid(2 z_g)), so
    g = 2 s_g - 1, whose derivative 1 - g^2 is 4 s_g (1 - s_g). ``keep`` [K, B, 1] masks the
    cell gradient carried across a trial start; None where no trial starts inside the sequence.
    """
    s = gates.view(out["slope"].shape)
    slope = torch.addcmul(s, s, s, value=-1.0, out=out["slope"])  # s (1 - s) for every gate
    i, f, o, g_half = s.unbind(2)
    d_i, d_f, d_o, d_g_half = slope.unbind(2)
    tanh_c = torch.tanh(c, out=out["tanh_c"])
    # d gates = [dc, dc, dc, dh] * [g i(1-i), c_prev f(1-f), i (1-g^2), tanh(c) o(1-o)]
    from_c, scratch = out["from_c"], out["scratch"]
    torch.mul(g_half, 2.0, out=scratch).sub_(1.0)
    torch.mul(d_i, scratch, out=from_c[:, :, 0])
    torch.mul(c_prev, d_f, out=from_c[:, :, 1])
    torch.mul(i, d_g_half, out=from_c[:, :, 2]).mul_(4.0)
    torch.mul(tanh_c, tanh_c, out=scratch)
    c_from_h = torch.addcmul(o, o, scratch, value=-1.0, out=out["c_from_h"])  # o (1 - tanh^2)
    carry_c = f if keep is None else torch.mul(f, keep, out=out["carry_c"])
    return from_c, torch.mul(tanh_c, d_o, out=out["from_h"]), c_from_h, carry_c


def _chunk_back(grad_h, carry_h, carry_c, factors, grad_gates, weight_hh, keep, start):
    """The recursion over one chunk's steps, last to first: each step's gate gradients go into
    ``grad_gates`` [K, B, 4, H], and what reaches the step before the chunk is returned.

    Args:
        grad_h: the loss's gradient of the chunk's hidden states [K, B, H].
        carry_h, carry_c: the gradients carried into the chunk's last hidden and cell state.
        factors: the chunk's :func:`_gate_factors`.
        grad_gates: the chunk's gate gradients (written).
        weight_hh: ``nn.LSTM``'s [4H, H] recurrent weight.
        keep: [K, B, 1], 0 where a trial started; None where none starts inside the sequence.
        start: the chunk's first step in the sequence (nothing is carried back from step 0).

    Returns:
        the gradients carried into the hidden and cell state before the chunk.
    """
    from_c, from_h, c_from_h, carry_c_factor = (factor.unbind(0) for factor in factors)
    upstream, keep_rows = grad_h.unbind(0), None if keep is None else keep.unbind(0)
    rows, gates_c = grad_gates.unbind(0), grad_gates[:, :, :3].unbind(0)
    gates_o = grad_gates[:, :, 3].unbind(0)
    grad_h_t = upstream[-1] + carry_h
    for t in range(len(rows) - 1, -1, -1):
        grad_c = torch.addcmul(carry_c, grad_h_t, c_from_h[t])
        torch.mul(from_c[t], grad_c.unsqueeze(1), out=gates_c[t])
        torch.mul(from_h[t], grad_h_t, out=gates_o[t])
        if start + t == 0:
            break
        carry_c = grad_c * carry_c_factor[t]
        flat = rows[t].view(grad_c.shape[0], -1)
        if keep_rows is not None:
            carried = (flat @ weight_hh) * keep_rows[t]
            grad_h_t = upstream[t - 1] + carried if t > 0 else carried
        else:  # h's gradient at the step before, in one product
            grad_h_t = torch.addmm(upstream[t - 1], flat, weight_hh) if t > 0 else flat @ weight_hh
    return grad_h_t, carry_c
