"""Benchmarks of DESIGN.md section 10; run from the project root, e.g. ``python -m bench.bench_features``."""
