"""The pure core: money, bills and payments.

Nothing in this package performs I/O, reads a clock or makes an id: times and ids are
arguments. ``tests/core/test_purity.py`` enforces the import rule.
"""
