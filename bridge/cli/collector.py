"""The garbage collector of a long-running bridge or relay process, set once it serves.

Why: every payment allocates a few hundred objects (requests, answers, frames, dataclasses),
so CPython's cyclic collector ran its youngest generation every 700 allocations, several
times a payment, and now and then a full collection walked every object the process holds:
the modules, the app, the caches. Measured with ``bench.payments`` (A/B, 2 pairs at
concurrency 64 and 128, session 6): p99 latency 60–111 ms against 110–229 ms, payments/s
+0–24 %. Two standard settings fix it:

- :func:`gc.freeze` once start-up is done: what exists then (code, configuration, the app,
  caches) lives as long as the process and is never walked again; objects made later are
  collected as before;
- a youngest generation of :data:`YOUNG` allocations instead of 700 (and older generations
  at 50 collections instead of 10): fewer, slightly larger collections. Reference counting,
  which frees nearly everything, is untouched; only cycles wait a little longer.
"""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation (CPython's default: 700).
YOUNG = 20_000
#: Collections of a generation between collections of the next (CPython's default: 10).
OLDER = 50


def settle() -> None:
    """Collect what start-up left, freeze the rest, and space collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
