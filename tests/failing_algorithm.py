"""A user algorithm whose training fails (for the sweep's failure handling tests)."""

from __future__ import annotations

from baselines.lstm_a2c import LSTMA2C


class FailingA2C(LSTMA2C):
    """LSTM-A2C that raises in its first update."""

    name = "failing-a2c"

    def training_step(self, batch, batch_idx):
        raise RuntimeError("deliberate failure in training_step")
