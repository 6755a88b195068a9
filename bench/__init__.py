"""Benchmarks: runnable programs (``python -m bench.<name>``) that measure the gateway."""
