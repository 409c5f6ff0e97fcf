import pytest
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
