import pytest
import torch
from accelerate.utils import DistributedType

from embodied_mm.train.trainer import check_distributed_type


@pytest.mark.parametrize("kind", [DistributedType.FSDP, DistributedType.DEEPSPEED])
def test_sharded_training_is_refused_naming_what_runs(kind):
    with pytest.raises(ValueError, match=rf"accelerate selected {kind.name}.*--multi_gpu"):
        check_distributed_type(kind)


@pytest.mark.parametrize(
    "kind", [DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU]
)
def test_one_process_and_ddp_are_accepted(kind):
    check_distributed_type(kind)


def test_each_rank_gets_its_own_stream_back_and_a_changed_world_size_is_reported(capsys):
    from accelerate import Accelerator

    from embodied_mm.train.checkpoint import rng_state
    from embodied_mm.train.trainer import _restore_rng

    accelerator = Accelerator(cpu=True)  # one process: rank 0 of 1
    torch.manual_seed(1)
    rank0 = rng_state()
    torch.manual_seed(2)
    rank1 = rng_state()
    torch.manual_seed(3)
    _restore_rng([rank0, rank1], accelerator)
    assert torch.equal(torch.get_rng_state(), rank0["torch"])
    assert "RNG streams of 2 process(es) and this run has 1" in capsys.readouterr().out
    _restore_rng(rank1, accelerator)  # a checkpoint from before per-rank streams
    assert torch.equal(torch.get_rng_state(), rank1["torch"])
