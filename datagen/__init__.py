"""Dataset generation: behaviour policies, vectorised collection, Minari writing, sources."""
