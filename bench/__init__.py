"""Benchmarks. `python -m bench [name ...]` runs them and writes one table to bench/results/."""
