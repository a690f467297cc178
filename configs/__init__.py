"""Experiment configs (ml_collections). Each `*.py` has `get_config(arg="")`; pass a
file with `--config=configs/ve_cifar10.py` (or `configs/ve_cifar10.py:smoke`)."""
