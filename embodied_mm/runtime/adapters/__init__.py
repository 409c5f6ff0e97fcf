"""Robot adapters: ``sim`` (our Gymnasium envs), ``dynamixel`` and ``feetech`` (SO-100/SO-101)
real arms on the shared ``servo_arm`` base, ``opencv`` cameras."""
