import numpy as np
import pytest

from embodied_mm.train.captions import CAPTION_PROMPT, CaptionDataset, caption


@pytest.mark.parametrize(
    ("pa", "pb", "relation"),
    [
        ((0.5, -0.1, 0.02), (0.5, 0.1, 0.02), "left of"),  # the image's left is -y
        ((0.5, 0.1, 0.02), (0.5, -0.1, 0.02), "right of"),
        ((0.6, 0.0, 0.02), (0.4, 0.02, 0.02), "in front of"),  # nearer the front camera (+x)
        ((0.4, 0.0, 0.02), (0.6, 0.02, 0.02), "behind"),
    ],
)
def test_relation_follows_the_front_camera_view(pa, pb, relation):
    objects = [("red cube", np.array(pa)), ("blue can", np.array(pb))]
    texts = {caption(objects, np.random.default_rng(s)) for s in range(20)}
    assert f"the red cube is {relation} the blue can" in texts


def test_caption_dataset_items_follow_the_batch_contract():
    ds = CaptionDataset(["embodied_mm/PickLift-v0"], n=3, image_size=32)
    assert len(ds) == 3
    item = ds[0]
    assert item["observation.images.front"].shape == (3, 32, 32)
    assert 0.0 <= float(item["observation.images.front"].min()) <= 1.0
    assert item["observation.state"].shape == (15,)
    assert item["task"] == CAPTION_PROMPT
    assert item["plan"].startswith("the ") and " cube" in item["plan"]
