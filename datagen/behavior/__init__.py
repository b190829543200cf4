"""Behaviour policies: SAC trained online on each environment (`train.train_behavior`), its saved
checkpoints as batched policies, and the replay buffer kept for the replay datasets."""
