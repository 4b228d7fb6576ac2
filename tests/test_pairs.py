"""Pair files (``configs/pairs/<algo>/<family>.yaml``): every shipped one resolves, ``extends``
layers another family's file first, and a malformed file is one ConfigError line."""

from __future__ import annotations

import pytest

import benchmark.run.config as config_module
from benchmark.run.config import CONFIG_DIR, load_run_config
from tasks import ConfigError

SHIPPED = sorted(CONFIG_DIR.glob("pairs/*/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_pair_file_resolves_and_acts(path):
    spec = load_run_config(path.parent.name, path.stem, [])
    bare = config_module.run_schema(path.parent.name, path.stem)
    assert spec.config != bare  # the file changed something


def test_extends_applies_the_named_file_first_then_its_own(tmp_path, monkeypatch):
    pairs = tmp_path / "pairs" / "rl2"
    pairs.mkdir(parents=True)
    (pairs / "pendulum-params.yaml").write_text(
        "base: {algo: {gae_lambda: 0.95, epochs: 4}, trainer: {env_steps: 2000}}\n"
        "when: [{match: {max_steps: 100}, set: {trainer: {env_steps: 3000}}}]\n"
    )
    (pairs / "cartpole-params.yaml").write_text(
        "extends: pendulum-params\nbase: {algo: {epochs: 3}}\n"
    )
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path)
    spec = load_run_config("rl2", "cartpole-params", [])
    assert (spec.config.algo.gae_lambda, spec.config.algo.epochs) == (0.95, 3)
    assert spec.config.trainer.env_steps == 2000
    longer = load_run_config("rl2", "cartpole-params", ["task.max_steps=100"])
    assert longer.config.trainer.env_steps == 3000  # the extended file's `when` acts too


@pytest.mark.parametrize(
    "text, message",
    [
        ("extends: no-such-family\n", "extends: no-such-family names no such file"),
        ("extends: cartpole-params\n", "extends: cartpole-params comes back to a file"),
        ("base: {}\nwhen: []\nextend: pendulum-params\n", "unknown key 'extend'"),
    ],
)
def test_a_malformed_pair_file_is_one_config_error(tmp_path, monkeypatch, text, message):
    pairs = tmp_path / "pairs" / "rl2"
    pairs.mkdir(parents=True)
    (pairs / "cartpole-params.yaml").write_text(text)
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path)
    with pytest.raises(ConfigError, match=message) as error:
        load_run_config("rl2", "cartpole-params", [])
    assert "configs/pairs/rl2/cartpole-params.yaml" in str(error.value)
    assert "\n" not in str(error.value)
