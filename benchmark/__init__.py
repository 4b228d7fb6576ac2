"""How a study is run and reported: configs, DataModule, evaluation, tracking, CLI."""
