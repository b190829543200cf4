"""Across experiments: gather finished runs (DVC experiments, wandb) and render the results report.

Kept out of offline_rl/ because the train and evaluate stages depend on that whole folder: editing
the report must not rerun training."""
