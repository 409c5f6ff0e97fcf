"""Task definitions: registry, instructions and their splits, reset distributions."""

from __future__ import annotations

import string

import numpy as np
import pytest

from embodied_mm.envs.tasks import TASKS, get_task
from embodied_mm.envs.tasks.layout import PALETTE, sample_xys
from embodied_mm.registry import UnknownNameError

REQUIRED = {
    "reach",
    "push",
    "pick_lift",
    "pick_place_bin",
    "stack",
    "place_on_plate",
    "sort_by_color",
}


def test_registry_has_the_six_tasks_and_unknown_names_list_them():
    assert set(TASKS.names()) >= REQUIRED
    with pytest.raises(UnknownNameError, match="unknown task 'juggle'; known: pick_lift"):
        get_task("juggle")


@pytest.mark.parametrize("name", TASKS.names())
def test_instructions_have_paraphrases_and_a_disjoint_heldout_split(name):
    task = get_task(name)
    train, heldout = task.instructions.train, task.instructions.heldout
    assert len(train) >= 3 and len(heldout) >= 2
    assert set(train).isdisjoint(heldout)
    episode = task.sample(np.random.default_rng(0), randomize_colors=False)
    fields = {f for t in train + heldout for _, f, _, _ in string.Formatter().parse(t) if f}
    assert fields <= set(episode.words)  # every template can be filled
    assert any("{color}" in t for t in train)  # the instructions name the objects by colour
    for seed in range(5):
        text = task.instruction(episode, np.random.default_rng(seed), "train")
        assert text in {t.format(**episode.words) for t in train}
    with pytest.raises(ValueError, match="split 'dev'"):
        task.instruction(episode, np.random.default_rng(0), "dev")


@pytest.mark.parametrize("name", TASKS.names())
def test_reset_distribution_is_seeded_and_places_every_object(name):
    task = get_task(name)
    names = {o.name for o in task.objects()}
    a = task.sample(np.random.default_rng(5), randomize_colors=True)
    b = task.sample(np.random.default_rng(5), randomize_colors=True)
    c = task.sample(np.random.default_rng(6), randomize_colors=True)
    assert set(a.poses) == names
    for obj in names:
        np.testing.assert_array_equal(a.poses[obj][0], b.poses[obj][0])
    assert any(not np.allclose(a.poses[o][0], c.poses[o][0]) for o in names)
    assert a.words["color"] in PALETTE
    # distractors never share the target's colour name: the instruction stays unambiguous
    distractor_colors = [a.rgba[o] for o in names if o.startswith("distractor")]
    target = np.array(a.rgba[a.roles["target"]][:3])
    assert all(np.abs(np.array(c[:3]) - target).max() > 0.1 for c in distractor_colors)


def test_sample_xys_keeps_objects_apart():
    rng = np.random.default_rng(0)
    for _ in range(20):
        xys = sample_xys(rng, [0.03, 0.03, 0.05], gap=0.02)
        for i in range(3):
            for j in range(i):
                assert np.linalg.norm(xys[i] - xys[j]) >= 0.05
    with pytest.raises(RuntimeError, match="could not place"):
        sample_xys(rng, [0.1] * 4, max_tries=50)
    with pytest.raises(ValueError, match="does not fit"):
        sample_xys(rng, [0.3])
