"""The transitions file (data/transitions/<name>.h5): its schema, the torch-free writer that
preprocessing uses and reader of its header, the loader of its rows into tensors for training,
its rows memory-mapped for files larger than memory (`mapped.py`), and the block loader. The
layout is in `transitions/schema.py`."""
