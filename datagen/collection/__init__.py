"""Datasets sampled from the behaviour policies or their replay buffer, D4RL's kinds as Minari
datasets: recipes, vectorised rollouts in seeded shards run by a process pool or Ray, writing,
validation and reference scores."""
