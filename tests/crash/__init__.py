"""Helpers of the crash test (``tests/test_crash.py``): a real bridge process, a load, checks."""
