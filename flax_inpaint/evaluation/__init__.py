"""Evaluation: the eval tables of any repair methods, metrics, LPIPS, the classical methods."""
