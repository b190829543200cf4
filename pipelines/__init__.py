"""Thin DVC stage entries: read params.yaml, validate, call the libraries, write outputs."""
