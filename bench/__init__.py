"""Performance benchmarks (README.md, Targets).

Run from the project root, e.g. ``python -m bench.bench_features``.
"""
