"""Remembering which inbound deliveries were handled, so redeliveries do nothing twice.

Chat platforms redeliver events they think were not acknowledged and users
double-click buttons. The face derives a stable key per user action; the
first INSERT of that key wins.
"""

from __future__ import annotations

from core.platform.store import Store
from core.platform.timeutil import iso


def first_delivery(store: Store, key: str) -> bool:
    """Record `key`; True the first time it is seen, False for every redelivery."""
    with store.write() as db:
        cursor = db.execute(
            "INSERT OR IGNORE INTO slack_deliveries (delivery_key, seen_at) VALUES (?, ?)", (key, iso())
        )
        return cursor.rowcount == 1
