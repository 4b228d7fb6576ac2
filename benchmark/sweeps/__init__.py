"""Sweeps: the grid, the driver, launchers (local pool, Ray), workers, the outbox."""
