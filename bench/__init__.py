"""Benchmarks of POS Bridge (``bench/README.md``); nothing here is imported by the bridge."""
