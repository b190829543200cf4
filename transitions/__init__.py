"""The transitions file (data/transitions/<name>.h5): its schema, the torch-free writer that
preprocessing uses and reader of its header, the loader of its rows into tensors for training, and
the block loader for files larger than memory. The layout is in `transitions/schema.py`."""
