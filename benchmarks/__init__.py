"""Maintained benchmarks and GPU checks, run from a checkout as ``python -m benchmarks.<name>``; their reports go
to ``benchmarks/results``.  One-off research probes live in ``experiments``."""
