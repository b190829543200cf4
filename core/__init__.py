"""Plumbing every package shares, importing nothing of the project: errors, strict config models,
devices, atomic outputs, checkpoint files with RNG state, and the run fingerprint with resume."""
