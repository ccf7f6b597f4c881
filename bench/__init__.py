"""Benchmarks of POS Bridge; ``python -m bench.payments`` is the durable-payment benchmark.

Nothing here is imported by the bridge. The bench modules use only the standard library, so
they run under any Python 3.11+; the bridge they start runs under the repository's ``.venv``.
"""
