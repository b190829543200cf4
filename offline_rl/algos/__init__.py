"""The offline-RL algorithms, one file each, with their config models (`config.py`) and registry
(`registry.py`); `base.py` holds the contract they keep."""
