"""The crash test's plan: which payers pay which bill, how much, and when; and an answer.

Pure: a seeded ``random.Random`` and the bills fetched before the load are all it needs, so a
seed replays the same plan (``CRASH_SEED``).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PlannedPayment:
    id: str
    table: int
    amount: int
    tip: int
    resend: bool  # sent again with the same id after its answer: the replay must match
    twin: bool  # a second sender posts the very same request at the same time
    delay_s: float = 0.0  # a latecomer arrives after the others (often to a closed bill)


@dataclass(frozen=True, slots=True)
class PlannedBill:
    table: int
    bill: dict[str, Any]  # as fetched before the load (LOKE's JSON)
    kind: str  # "full", "partial" or "contested"
    payments: tuple[PlannedPayment, ...]
    start_at: float  # seconds after the load starts


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def _split(rng: random.Random, amount: int, parts: int) -> list[int]:
    parts = max(1, min(parts, amount))
    cuts = sorted(rng.sample(range(1, amount), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, amount]
    return [b - a for a, b in itertools.pairwise(bounds)]


def plan_payments(
    rng: random.Random, seed: int, bills: dict[int, dict[str, Any]], window_s: float
) -> list[PlannedBill]:
    """Split every bill among 1–4 payers: paid in full (sometimes with a latecomer), in part,
    or over-claimed by rivals."""
    planned = []
    for table, bill in sorted(bills.items()):
        balance = bill["balance"]
        roll = rng.random()
        if roll < 0.45:
            kind, amounts = "full", _split(rng, balance, rng.randint(1, 4))
        elif roll < 0.75:
            share = max(1, int(balance * rng.uniform(0.2, 0.8)))
            kind, amounts = "partial", _split(rng, share, rng.randint(1, 3))
        else:  # any two of these claims exceed the balance: not all can be accepted
            kind = "contested"
            amounts = [rng.randint(balance // 2 + 1, balance) for _ in range(rng.randint(2, 3))]
        payments = tuple(
            PlannedPayment(
                id=f"crash-{seed}-t{table}-p{n}",
                table=table,
                amount=amount,
                tip=rng.choice((0, 0, 100, 250, 500)) if bill["tipsAllowed"] else 0,
                resend=rng.random() < 0.25,
                twin=rng.random() < 0.08,
            )
            for n, amount in enumerate(amounts)
        )
        if kind == "full" and rng.random() < 0.3:  # one more guest, after the bill is paid
            late = PlannedPayment(
                id=f"crash-{seed}-t{table}-p{len(payments)}",
                table=table,
                amount=rng.randint(1, max(1, balance // 4)),
                tip=0,
                resend=rng.random() < 0.5,
                twin=False,
                delay_s=rng.uniform(1.0, 2.5),
            )
            payments = (*payments, late)
        planned.append(PlannedBill(table, bill, kind, payments, rng.uniform(0, window_s)))
    return sorted(planned, key=lambda b: b.start_at)
