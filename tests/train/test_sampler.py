import pytest

from embodied_mm.train.sampler import ResumableShardSampler


def test_ranks_get_disjoint_shards_of_the_same_epoch():
    a = list(ResumableShardSampler(40, batch_size=4, seed=1, rank=0, world_size=2))
    b = list(ResumableShardSampler(40, batch_size=4, seed=1, rank=1, world_size=2))
    seen_a = {i for batch in a for i in batch}
    seen_b = {i for batch in b for i in batch}
    assert len(a) == len(b) == 5
    assert not seen_a & seen_b
    assert len(seen_a | seen_b) == 40


def test_resume_position_continues_the_same_order():
    full = list(ResumableShardSampler(30, batch_size=3, seed=7))
    resumed = ResumableShardSampler(30, batch_size=3, seed=7)
    resumed.set_position(epoch=0, start_batch=4)
    assert list(resumed) == full[4:]
    resumed.set_position(epoch=1)
    assert list(resumed) != full  # a new epoch reshuffles


def test_too_small_dataset_fails_clearly():
    with pytest.raises(ValueError, match="a global batch needs 8 x 2"):
        ResumableShardSampler(10, batch_size=8, seed=0, world_size=2)
