"""Speed and memory benchmarks, run from the repository's root as modules.

``python -m benchmarks.bench_epoch`` and so on (benchmarks/README.md); each writes a record to
``results/``. They are measurements, never tests: the test run does not time anything.
"""
