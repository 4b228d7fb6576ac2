"""The run path: config, DataModule, evaluation, tracking, checkpoints and resume, runner."""
