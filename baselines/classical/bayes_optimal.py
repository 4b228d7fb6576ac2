"""Exact finite-horizon Bayes-optimal policy for independent Bernoulli bandits.

Every arm has an independent ``Beta(1, 1)`` (uniform) prior on its success probability and the
agent maximises the expected undiscounted total reward of ``pulls`` pulls. The problem is solved
exactly by backward induction over posterior states. An arm's posterior is summarised by its
``(successes, failures)`` counts and, because the arms are exchangeable, a joint state is stored in
canonical form: the multiset of per-arm counts, i.e. the per-arm states sorted.

Encoding. An arm state ``(s, f)`` with ``m = s + f`` pulls gets the integer id
``m * (m + 1) / 2 + s``; a canonical joint state is the ascending tuple of its arm ids, packed into
one ``int64`` key (``sum_j id_j * base**j``). Stage ``t`` (pulls made so far) holds the states with
``t`` pulls in total; stage ``t + 1`` is built from the children of stage ``t`` and the values are
then filled in backwards, all vectorised with numpy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BAYES_OPTIMAL_LIMIT = 5_000_000
"""Maximum number of canonical joint states (all stages together) the exact DP may enumerate.

Examples: 5 arms x 10 pulls need 3,519 states, 3 arms x 40 pulls 1,579,767 and 2 arms x 100 pulls
2,299,726 (a few seconds); 2 arms x 150 pulls (11.3M) or 4 arms x 40 pulls (16.4M) are refused.
The packed state key must also fit in 62 bits (``arms * log2((pulls + 1) * (pulls + 2) / 2)``).
"""

_KEY_BITS = 62
_TIE_TOLERANCE = 1e-12


def _multiset_counts(arms: int, pulls: int) -> np.ndarray:
    """Count canonical states per stage without enumerating them.

    Args:
        arms: Number of arms ``k``.
        pulls: Horizon ``n``.

    Returns:
        Float array ``c`` with ``c[t]`` the number of multisets of ``arms`` arm states with
        ``t`` pulls in total, for ``t = 0 .. pulls``.
    """
    slots = min(arms, pulls)
    # dp[j, t]: multisets of j arm states that have been pulled at least once, t pulls in total.
    dp = np.zeros((slots + 1, pulls + 1))
    dp[0, 0] = 1.0
    for grade in range(1, pulls + 1):
        new = dp.copy()
        for r in range(1, min(slots, pulls // grade) + 1):
            # r arms with exactly `grade` pulls, chosen with repetition among grade + 1 states.
            ways = math.comb(grade + r, r)
            new[r:, r * grade :] += ways * dp[:-r, : pulls + 1 - r * grade]
        dp = new
    return dp.sum(axis=0)


def canonical_state_count(arms: int, pulls: int) -> int:
    """Number of canonical joint states the exact DP enumerates (stages ``0 .. pulls``).

    Args:
        arms: Number of arms ``k``.
        pulls: Horizon ``n``.

    Returns:
        The state count (exact for counts below 2**53).
    """
    if arms < 1 or pulls < 0:
        raise ValueError(f"need arms >= 1 and pulls >= 0, got arms={arms}, pulls={pulls}")
    return int(round(float(_multiset_counts(arms, pulls).sum())))


def _log_lower_bound(arms: int, pulls: int) -> float:
    """Natural log of ``C(pulls + 2 arms, 2 arms) / arms!``, a lower bound on the state count."""
    return (
        math.lgamma(pulls + 2 * arms + 1)
        - math.lgamma(2 * arms + 1)
        - math.lgamma(pulls + 1)
        - math.lgamma(arms + 1)
    )


def check_tractable(arms: int, pulls: int) -> None:
    """Raise ``ValueError`` if the exact DP for ``arms`` x ``pulls`` exceeds the size limit.

    Args:
        arms: Number of arms ``k`` (>= 1).
        pulls: Horizon ``n`` (>= 1).

    Raises:
        ValueError: On invalid sizes, or when the number of canonical states exceeds
            ``BAYES_OPTIMAL_LIMIT`` (or the packed state key would not fit in 62 bits).
    """
    if arms < 1 or pulls < 1:
        raise ValueError(f"need arms >= 1 and pulls >= 1, got arms={arms}, pulls={pulls}")
    if _log_lower_bound(arms, pulls) > math.log(BAYES_OPTIMAL_LIMIT):
        needs = f"more than {BAYES_OPTIMAL_LIMIT:,} canonical states"
    else:
        count = canonical_state_count(arms, pulls)
        bits = arms * math.log2((pulls + 1) * (pulls + 2) // 2)
        if count <= BAYES_OPTIMAL_LIMIT and bits < _KEY_BITS:
            return
        needs = f"{count:,} canonical states and a {math.ceil(bits)}-bit state key"
    raise ValueError(
        f"Bayes-optimal DP intractable: {arms} arms x {pulls} pulls needs {needs}; "
        f"BAYES_OPTIMAL_LIMIT is {BAYES_OPTIMAL_LIMIT:,} states (and a {_KEY_BITS}-bit key)"
    )


class _ArmStates:
    """Lookup arrays over single-arm states ``(s, f)`` with ``s + f <= pulls``."""

    def __init__(self, pulls: int) -> None:
        m = np.concatenate([np.full(k + 1, k) for k in range(pulls + 1)])
        s = np.concatenate([np.arange(k + 1) for k in range(pulls + 1)])
        self.base = len(m)
        self.mean = (1.0 + s) / (2.0 + m)
        # Ids of the children after one more pull (only used below the last grade).
        self.success = (m + 1) * (m + 2) // 2 + s + 1
        self.failure = (m + 1) * (m + 2) // 2 + s


def _pack(ids: np.ndarray, base: int) -> np.ndarray:
    """Pack ascending arm-id rows ``(N, k)`` into int64 keys."""
    weights = base ** np.arange(ids.shape[1], dtype=np.int64)
    return ids.astype(np.int64) @ weights


def _unpack(keys: np.ndarray, base: int, arms: int) -> np.ndarray:
    """Inverse of :func:`_pack`: int64 keys to ascending arm-id rows ``(N, k)``."""
    weights = base ** np.arange(arms, dtype=np.int64)
    return (keys[:, None] // weights) % base


def _child_keys(ids: np.ndarray, arm_states: _ArmStates) -> np.ndarray:
    """Packed canonical children ``(N, k, 2)``: pull sorted position j, then success/failure.

    The pulled arm's id only grows, so each child is the row without position ``j`` with the new
    id merged in: ``b_i = max(c_{i-1}, min(c_i, v))`` for the remaining sorted row ``c``.
    """
    n_states, k = ids.shape
    out = np.empty((n_states, k, 2), dtype=np.int64)
    low = np.full((n_states, 1), -1, dtype=ids.dtype)
    high = np.full((n_states, 1), arm_states.base, dtype=ids.dtype)
    for j in range(k):
        rest = np.concatenate([low, ids[:, :j], ids[:, j + 1 :], high], axis=1)
        for outcome, table in enumerate((arm_states.success, arm_states.failure)):
            new = table[ids[:, j]][:, None]
            child = np.maximum(rest[:, :-1], np.minimum(rest[:, 1:], new))
            out[:, j, outcome] = _pack(child, arm_states.base)
    return out


def _solve(arms: int, pulls: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Run the DP; return sorted keys, per-state Q-values ``(N, k)`` and the prior value."""
    arm_states = _ArmStates(pulls)
    stage_keys = np.zeros(1, dtype=np.int64)
    stages, child_index = [], []
    for _ in range(pulls):
        ids = _unpack(stage_keys, arm_states.base, arms)
        kids = _child_keys(ids, arm_states)
        next_keys, inverse = np.unique(kids.ravel(), return_inverse=True)
        stages.append((stage_keys, ids))
        child_index.append(inverse.reshape(kids.shape))
        stage_keys = next_keys
    value_next = np.zeros(len(stage_keys))
    q_tables = []
    for (_, ids), index in zip(reversed(stages), reversed(child_index), strict=True):
        mean = arm_states.mean[ids]
        q = mean * (1.0 + value_next[index[..., 0]]) + (1.0 - mean) * value_next[index[..., 1]]
        q_tables.append(q)
        value_next = q.max(axis=1)
    keys = np.concatenate([k for k, _ in stages])
    q_all = np.concatenate(q_tables[::-1])
    order = np.argsort(keys)
    return keys[order], q_all[order], float(value_next[0])


def bayes_optimal_value(arms: int, pulls: int) -> float:
    """Expected total reward of the Bayes-optimal policy from the uniform prior.

    Args:
        arms: Number of Bernoulli arms, each with an independent ``Beta(1, 1)`` prior.
        pulls: Number of pulls (undiscounted horizon).

    Returns:
        The optimal expected number of successes in ``pulls`` pulls.

    Raises:
        ValueError: If the problem exceeds ``BAYES_OPTIMAL_LIMIT``.
    """
    check_tractable(arms, pulls)
    return _solve(arms, pulls)[2]


class BayesOptimalPlanner:
    """Precomputed Bayes-optimal actions for ``arms`` Beta(1, 1) Bernoulli arms and ``pulls`` pulls.

    The constructor solves the DP once; :meth:`action` then answers a batch of states with tensor
    operations only (canonicalise by sorting, pack to an int64 key, ``searchsorted`` into the key
    table, argmax over the per-arm Q-values).

    Attributes:
        value: Expected total reward of the optimal policy from the prior.
        num_states: Canonical states with fewer than ``pulls`` pulls (those that need an action).
    """

    def __init__(self, arms: int, pulls: int) -> None:
        """Solve the DP.

        Args:
            arms: Number of arms ``k``.
            pulls: Horizon ``n`` (total pulls per trial).

        Raises:
            ValueError: If the problem exceeds ``BAYES_OPTIMAL_LIMIT``.
        """
        check_tractable(arms, pulls)
        self.arms = arms
        self.pulls = pulls
        keys, q_values, self.value = _solve(arms, pulls)
        self.num_states = len(keys)
        self._base = (pulls + 1) * (pulls + 2) // 2
        self._keys = torch.from_numpy(keys)
        self._q = torch.from_numpy(q_values)
        self._weights = self._base ** torch.arange(arms, dtype=torch.int64)

    def q_values(self, successes: torch.Tensor, failures: torch.Tensor) -> torch.Tensor:
        """Optimal expected remaining reward of pulling each arm, for a batch of states.

        Args:
            successes: ``LongTensor[N, k]`` per-arm success counts.
            failures: ``LongTensor[N, k]`` per-arm failure counts; every row must have made
                fewer than ``pulls`` pulls in total.

        Returns:
            ``float64`` tensor ``[N, k]`` of Q-values in the original arm order.
        """
        successes = torch.as_tensor(successes, dtype=torch.int64).cpu()
        failures = torch.as_tensor(failures, dtype=torch.int64).cpu()
        if successes.shape != failures.shape or successes.dim() != 2:
            raise ValueError("successes and failures must both have shape [N, arms]")
        if successes.shape[1] != self.arms:
            raise ValueError(f"expected {self.arms} arms, got {successes.shape[1]}")
        if (successes < 0).any() or (failures < 0).any():
            raise ValueError("counts must be non-negative")
        total = (successes + failures).sum(dim=1)
        if (total >= self.pulls).any():
            raise ValueError(f"states must have made fewer than {self.pulls} pulls")
        m = successes + failures
        ids = m * (m + 1) // 2 + successes
        sorted_ids, order = torch.sort(ids, dim=1, stable=True)
        rows = torch.searchsorted(self._keys, sorted_ids @ self._weights)
        q_sorted = self._q[rows]
        return torch.empty_like(q_sorted).scatter_(1, order, q_sorted)

    def action(self, successes: torch.Tensor, failures: torch.Tensor) -> torch.Tensor:
        """Bayes-optimal arm for each state in a batch (ties: lowest arm index).

        Args:
            successes: ``LongTensor[N, k]`` per-arm success counts.
            failures: ``LongTensor[N, k]`` per-arm failure counts (fewer than ``pulls`` in total
                per row).

        Returns:
            ``LongTensor[N]`` of arm indices.
        """
        q = self.q_values(successes, failures)
        best = q >= q.max(dim=1, keepdim=True).values - _TIE_TOLERANCE
        return best.to(torch.int8).argmax(dim=1)
