"""Benchmarks and research probes, run from a checkout as ``python -m benchmarks.<name>``; their reports go
to ``benchmarks/results``."""
