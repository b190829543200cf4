"""Offline-RL learning library: device-resident data, networks, algorithms, training, evaluation."""
