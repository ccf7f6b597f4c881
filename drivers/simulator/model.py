"""The simulated POS's rules and menu, pure: bills in, bills out.

The simulator behaves like a careful POS: it refuses a payment on a closed bill, above the
balance, in another currency, or with a tip where tips are off, and closes a bill whose balance
reaches zero. It does *not* deduplicate payments by the platform's id (most real POSes do
not), so a bridge that applied a payment twice would be caught by the tests.
"""

from __future__ import annotations

import random
from datetime import datetime

from bridge.core.bill import Bill, BillItem, BillPayment, ItemKind, SubItem
from drivers.base import PaymentInstruction
from drivers.errors import PaymentRefusedError

# (id, name, unit price in cents incl. GST, options that may be added)
_MENU: tuple[tuple[str, str, int, tuple[tuple[str, int], ...]], ...] = (
    ("FW", "Flat White", 450, (("Soy Milk", 60), ("Extra Shot", 50))),
    ("LB", "Long Black", 400, (("Extra Shot", 50),)),
    ("EB", "Eggs Benedict", 2400, (("Add Bacon", 500), ("Gluten Free Bread", 200))),
    ("MP", "Margherita Pizza", 2600, (("Extra Mozzarella", 400),)),
    ("FC", "Fish and Chips", 2900, ()),
    ("CS", "Caesar Salad", 2100, (("Add Chicken", 600),)),
    ("PA", "Pale Ale Schooner", 1150, ()),
    ("SB", "Sauvignon Blanc Glass", 1300, ()),
    ("TM", "Tiramisu", 1500, ()),
    ("CH", "Chips", 900, (("Aioli", 150),)),
)

GST_DIVISOR = 11  # Australian GST: tax is 1/11 of a GST-inclusive price


def _tax(amount: int) -> int:
    return amount // GST_DIVISOR


def make_bill(
    location: str, table: int, serial: int, now: datetime, rng: random.Random, currency: str
) -> Bill:
    """A realistic open bill: 2–6 lines, some options, now and then a discount or surcharge."""
    items: list[BillItem] = []
    for code, name, price, options in rng.sample(_MENU, rng.randint(2, 6)):
        chosen = tuple(SubItem(n, a) for n, a in options if rng.random() < 0.4)
        items.append(
            BillItem(
                name=name,
                quantity=rng.randint(1, 3),
                amount=price,
                id=code,
                tax=_tax(price),
                sub_items=chosen,
            )
        )
    roll = rng.random()
    if roll < 0.2:
        items.append(
            BillItem(
                name="Happy Hour",
                quantity=1,
                amount=-500,
                id="DISC-HH",
                kind=ItemKind.DISCOUNT,
                tax=-_tax(500),
            )
        )
    elif roll < 0.3:
        items.append(
            BillItem(
                name="Public Holiday Surcharge",
                quantity=1,
                amount=350,
                id="SUR-PH",
                kind=ItemKind.ADJUSTMENT,
                tax=_tax(350),
            )
        )
    return Bill(
        id=f"{location}-T{table:03d}-{serial:05d}",
        table=table,
        currency=currency,
        items=tuple(items),
        created=now,
        updated=now,
        tips_allowed=table % 7 != 0,  # a few tables (e.g. functions) take no tips
    )


def apply_payment(
    bill: Bill, instruction: PaymentInstruction, pos_reference: str, now: datetime
) -> Bill:
    """The bill after ``instruction``, or :class:`PaymentRefusedError` saying why not."""
    if not bill.is_open:
        raise PaymentRefusedError("bill_closed", f"bill {bill.id} is closed")
    if instruction.amount.currency != bill.currency:
        raise PaymentRefusedError("currency_mismatch", f"bill {bill.id} is in {bill.currency}")
    if instruction.tip.minor and not bill.tips_allowed:
        raise PaymentRefusedError("tips_not_allowed", f"bill {bill.id} takes no tips")
    if instruction.amount.minor > bill.balance.minor:
        raise PaymentRefusedError(
            "amount_exceeds_balance",
            f"{instruction.amount} is above the balance {bill.balance} of bill {bill.id}",
        )
    payment = BillPayment(
        name=instruction.label,
        amount=instruction.amount.minor,
        tip=instruction.tip.minor,
        ref=instruction.payment_id,
    )
    return bill.with_payment(payment, now)
