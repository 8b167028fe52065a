"""Evaluation: the eval tables, metrics, LPIPS, classical baselines."""
