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

    (tmp_path / "pairs" / "a2c").mkdir()  # another algorithm's file: algo/family
    (tmp_path / "pairs" / "a2c" / "pendulum-params.yaml").write_text("extends: rl2/cartpole-params")
    with pytest.raises(ConfigError, match="unknown key 'algo.epochs'"):
        load_run_config("a2c", "pendulum-params", [])  # a key RL² has and A2C has not
    (tmp_path / "pairs" / "a2c" / "cartpole-params.yaml").write_text("extends: rl2/pendulum-params")
    (pairs / "pendulum-params.yaml").write_text("base: {algo: {gae_lambda: 0.9}}\n")
    assert load_run_config("a2c", "cartpole-params", []).config.algo.gae_lambda == 0.9


def test_the_memoryless_a2c_takes_lstm_a2c_settings_on_classic_control():
    for family in ("cartpole-params", "pendulum-params", "acrobot-params"):
        a2c = load_run_config("a2c", family, []).config
        lstm = load_run_config("lstm-a2c", family, []).config
        assert a2c.trainer == lstm.trainer
        assert {k: v for k, v in lstm.algo.items() if k != "cell"} == dict(a2c.algo)


@pytest.mark.parametrize(
    "text, message",
    [
        ("extends: no-such-family\n", "extends: no-such-family names no such file"),
        ("extends: lstm-a3c/cartpole-params\n", "lstm-a3c/cartpole-params names no such file"),
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
