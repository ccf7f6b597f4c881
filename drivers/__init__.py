"""POS drivers: one small typed interface (:mod:`drivers.base`), many ways to reach a POS."""
