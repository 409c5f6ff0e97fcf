"""Training batches through the same pipeline: the window dataset's uint8 frames (what a
camera gives at run time) and its LeRobot float frames give the model the same pixels."""

import pytest
import torch

from embodied_mm.data.torch_dataset import build_window_dataset
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.train.trainer import collate
from tests.model.helpers import tiny_config
from tests.train.conftest import write_dataset


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("windows") / "ds", [12, 10])


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    cfg = tiny_config(state_dim=15, action_dim=7)
    cfg.vision.image_size, cfg.vision.patch_size = 16, 8  # the dataset's 32x32 frames halve
    return VLAPolicy(cfg, device="cpu")


def test_uint8_and_float_windows_give_the_model_the_same_inputs(dataset_root, policy):
    k = policy.config.chunk_size
    as_float = build_window_dataset(dataset_root, chunk_size=k)
    as_uint8 = build_window_dataset(dataset_root, chunk_size=k, image_format="uint8")
    f, u = as_float[5], as_uint8[5]
    assert f["observation.images.front"].shape == (3, 32, 32)
    assert u["observation.images.front"].shape == (32, 32, 3)
    assert u["observation.images.front"].dtype == torch.uint8
    batch_f = collate([as_float[i] for i in range(4)])
    batch_u = collate([as_uint8[i] for i in range(4)])
    inputs_f, inputs_u = policy.preprocess(batch_f), policy.preprocess(batch_u)
    for key in ("observation.images.front", "observation.images.wrist"):
        assert inputs_u[key].shape == (4, 3, 16, 16)
        torch.testing.assert_close(inputs_u[key], inputs_f[key], atol=1e-5, rtol=0)
    torch.testing.assert_close(inputs_u["action"], inputs_f["action"])  # normalised targets
    loss_u, _ = policy.compute_loss(batch_u)
    loss_f, _ = policy.compute_loss(batch_f)
    torch.testing.assert_close(loss_u, loss_f, atol=1e-5, rtol=1e-5)


def test_an_unknown_image_format_fails(dataset_root):
    with pytest.raises(ValueError, match=r"image_format must be one of \('float', 'uint8'\)"):
        build_window_dataset(dataset_root, image_format="png")
