"""Minari datasets -> one transitions file: reading episodes (through HDF5's C API where it pays),
building rows in blocks, in forked workers, written by `transitions.writer`. Never loads torch."""
