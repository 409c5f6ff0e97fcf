"""Policy evaluation in simulation: vectorised rollouts, success rates with Wilson intervals,
``eval_info.json`` and regression checks between two evaluations."""
