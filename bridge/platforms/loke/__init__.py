"""LOKE: the pay-at-table URLs an addon provides (``docs/loke-pay-at-table.md``)."""

PLATFORM = "loke"
