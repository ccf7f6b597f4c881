"""The simulated POS: the embedded default, used by the demo, the tests and the benchmarks."""
