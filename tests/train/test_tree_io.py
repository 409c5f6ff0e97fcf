import random

import numpy as np
import pytest
import torch

from embodied_mm.train.tree_io import load_tree, save_tree


def _optimizer_after_steps() -> torch.optim.Optimizer:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return opt


def test_optimizer_and_rng_state_round_trip(tmp_path):
    opt = _optimizer_after_steps()
    state = {
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.default_rng(3).bit_generator.state,
        "python_rng": random.Random(4).getstate(),
        "step": 7,
    }
    save_tree(state, tmp_path, "state")
    back = load_tree(tmp_path, "state")

    assert back["step"] == 7
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    assert back["numpy_rng"] == state["numpy_rng"]
    assert back["python_rng"] == state["python_rng"]  # tuples restored as tuples
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    for pid, entries in state["optimizer"]["state"].items():
        for name, value in entries.items():
            assert torch.equal(back["optimizer"]["state"][pid][name], value)
    # the restored dict loads into a fresh optimizer
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])


def test_corrupt_file_names_it(tmp_path):
    save_tree({"x": torch.ones(3)}, tmp_path, "state")
    (tmp_path / "state.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"state\.safetensors"):
        load_tree(tmp_path, "state")


def test_unpicklable_object_is_refused(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        save_tree({"f": object()}, tmp_path, "state")
