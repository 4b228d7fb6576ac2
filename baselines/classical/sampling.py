"""Seeded, batched Gamma and Beta samplers for posterior sampling strategies.

``torch.distributions`` draws from the global generator and ``torch._standard_gamma`` is about seven
times slower on CPU than the vectorised Marsaglia-Tsang method below, so Thompson sampling and OTS
use these. Every draw comes from the explicit ``generator``: the same seed gives the same samples.
"""

from __future__ import annotations

import torch


def sample_gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) samples by Marsaglia and Tsang (2000), for shape parameters >= 1.

    One normal and one uniform per attempt; an attempt is accepted with probability above 0.95, and
    only the rejected entries are drawn again (recursively, on ever fewer entries).

    Args:
        shape: float tensor of shape parameters, every entry >= 1.
        generator: source of randomness (its device must be that of ``shape``).
    """
    d = shape - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    x = torch.randn(shape.shape, generator=generator, device=shape.device, dtype=shape.dtype)
    u = torch.rand(shape.shape, generator=generator, device=shape.device, dtype=shape.dtype)
    v = (1.0 + c * x) ** 3
    log_v = torch.log(v.clamp(min=torch.finfo(shape.dtype).tiny))
    accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    out = d * v
    rejected = ~accept
    if bool(rejected.any()):
        out[rejected] = sample_gamma(shape[rejected], generator)
    return out


def sample_beta(
    alpha: torch.Tensor, beta: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Beta(alpha, beta) samples as G_a / (G_a + G_b) with independent Gamma draws.

    Args:
        alpha: float tensor, entries >= 1.
        beta: float tensor of the same shape, entries >= 1.
        generator: source of randomness.
    """
    gammas = sample_gamma(torch.stack([alpha, beta]), generator)
    return gammas[0] / (gammas[0] + gammas[1])
