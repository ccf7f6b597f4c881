"""Plain bills for core tests: no driver, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.core.bill import Bill, BillItem, BillPayment, ItemKind, SubItem

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_bill(**changes: object) -> Bill:
    """Flat white ×2 with soy (2 × (450 + 60)), pizza 2600, happy-hour discount −500: 3120."""
    fields: dict[str, object] = {
        "id": "B-0001",
        "table": 4,
        "currency": "AUD",
        "items": (
            BillItem("Flat White", 2, 450, "FW", tax=40, sub_items=(SubItem("Soy Milk", 60),)),
            BillItem("Margherita Pizza", 1, 2600, "MP", tax=236),
            BillItem("Happy Hour", 1, -500, "HH", kind=ItemKind.DISCOUNT, tax=-45),
        ),
        "created": T0,
        "updated": T0,
    }
    fields.update(changes)
    return Bill(**fields)  # type: ignore[arg-type]


def paid(bill: Bill, amount: int, tip: int = 0, ref: str = "x") -> Bill:
    return bill.with_payment(BillPayment("App", amount, tip, ref), later(1))
