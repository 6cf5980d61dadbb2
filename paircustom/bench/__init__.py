"""Performance benchmarks: ``python -m paircustom.bench.perf`` (see ``perf`` for what is measured)."""
