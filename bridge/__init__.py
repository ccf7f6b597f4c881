"""POS Bridge: pay-at-table platforms on one side, the venue's point-of-sale on the other."""

__version__ = "0.1.0"
