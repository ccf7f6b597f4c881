"""Async orchestration between the edges and the store: payments, outbox, POS health."""
