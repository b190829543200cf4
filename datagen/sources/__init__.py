"""Imported datasets (docs/datasets-import.md): a Minari remote id, a D4RL HDF5 file, or a Minari
folder, each landing as a Minari dataset that preprocess takes like a generated one."""
