"""Multi-task training and evaluation: dynamic sampling, folds, checkpoints, DDP, metrics."""
