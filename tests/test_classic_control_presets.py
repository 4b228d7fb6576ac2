"""acrobot-params' Packer et al. presets: tied links, inertia, the extreme unions."""

from __future__ import annotations

import pytest
import torch

from tasks import ConfigError, make_task, setting_label, task_generator

ACROBOT = {
    "packer": [(0.75, 1.25)],
    "packer-extreme": [(0.5, 0.75), (1.25, 1.5)],
}
"""Packer et al.'s R and E intervals of the acrobot's mass, length and inertia."""


@pytest.mark.parametrize("preset", sorted(ACROBOT))
def test_acrobot_presets_tie_both_links_and_draw_from_their_intervals(preset):
    family = make_task("acrobot-params", ranges=preset, dtype="float64")
    tasks = family.sample(20000, task_generator(3, "train"))
    assert torch.equal(tasks["link_mass_1"], tasks["link_mass_2"])
    assert torch.equal(tasks["link_length_1"], tasks["link_length_2"])
    assert (tasks["gravity"] == 9.8).all()
    intervals = ACROBOT[preset]
    total = sum(high - low for low, high in intervals)
    for key in ("link_mass_1", "link_length_1", "link_moi"):
        values = tasks[key]
        hits = [(values >= low) & (values <= high) for low, high in intervals]
        assert torch.stack(hits).any(0).all(), key
        for (low, high), hit in zip(intervals, hits, strict=True):
            assert abs(float(hit.double().mean()) - (high - low) / total) < 0.02, key
    # Mass, length and inertia are separate draws, not one value.
    assert not torch.equal(tasks["link_mass_1"], tasks["link_length_1"])
    assert not torch.equal(tasks["link_mass_1"], tasks["link_moi"])


def test_the_suite_ranges_draw_the_links_apart_and_keep_gymnasiums_inertia():
    tasks = make_task("acrobot-params").sample(512, task_generator(0, "train"))
    assert not torch.equal(tasks["link_mass_1"], tasks["link_mass_2"])
    assert (tasks["link_moi"] == 1.0).all()
    with pytest.raises(ConfigError, match="task.link_moi_range cannot be set with task.ranges"):
        make_task("acrobot-params", ranges="packer", link_moi_range=[0.5, 1.5])


def test_a_fixed_constant_draws_nothing_from_the_task_stream():
    fixed = {f"{key}_range": [1.0, 1.0] for key in ("link_mass_1", "link_mass_2")}
    fixed |= {f"{key}_range": [1.0, 1.0] for key in ("link_length_1", "link_length_2")}
    family = make_task("acrobot-params", gravity_range=[9.8, 9.8], **fixed)
    generator = task_generator(0, "train")
    before = generator.get_state()
    family.sample(64, generator)
    assert torch.equal(generator.get_state(), before)


def test_the_inertia_changes_the_dynamics():
    tasks = make_task("acrobot-params", ranges="packer").sample(2, task_generator(1, "test"))
    tasks = {key: value[:1].repeat(2) for key, value in tasks.items()}
    tasks["link_moi"] = torch.tensor([0.5, 1.5])
    family = make_task("acrobot-params")
    state = {"s": torch.tensor([[0.3, -0.2, 0.0, 0.0]] * 2)}
    for _ in range(5):
        state, _, _ = family.step(tasks, state, torch.tensor([2, 2]), None)
    assert not torch.allclose(state["s"][0], state["s"][1])


@pytest.mark.parametrize("family", ["acrobot-params", "cartpole-params", "pendulum-params"])
def test_a_settings_label_names_the_ranges_only_where_they_act(family):
    suite = make_task(family).config.as_dict()
    ranged = [key for key in suite if key.endswith("_range")]
    assert ranged
    label = setting_label(family, suite)
    assert all(f"{key}=" in label for key in ranged) and label.startswith(f"{family} episodes=2")
    packer = make_task(family, ranges="packer").config.as_dict()
    label = setting_label(family, packer)
    assert not any(f"{key}=" in label for key in ranged)
    assert label.endswith("ranges=packer") and "episodes=2 max_steps=200" in label
