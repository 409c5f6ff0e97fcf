"""Robot adapters: ``sim`` (our Gymnasium envs), ``dynamixel`` (real arms), ``opencv`` cameras."""
