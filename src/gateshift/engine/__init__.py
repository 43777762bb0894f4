"""Training, evaluation, checkpoints, optimisation, distributed helpers and metrics."""
