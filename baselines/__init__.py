"""What a new algorithm is compared against: learned Lightning modules and classical strategies.

Importing this package registers the built-in algorithms and classical strategies.
"""

from baselines import (
    a2c,  # noqa: F401  (registers a2c)
    lstm_a2c,  # noqa: F401  (registers lstm-a2c)
    lstm_a3c,  # noqa: F401  (registers lstm-a3c)
    rl2,  # noqa: F401  (registers rl2)
)
from baselines.base import ActorCriticConfig, MetaRLAlgorithm
from baselines.classical import bandits, tabular  # noqa: F401  (register the strategies)
from baselines.registry import ALGORITHMS, algorithm_names, get_algorithm_class, register_algorithm

__all__ = [
    "ALGORITHMS",
    "ActorCriticConfig",
    "MetaRLAlgorithm",
    "algorithm_names",
    "get_algorithm_class",
    "register_algorithm",
]
