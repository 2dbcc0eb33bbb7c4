"""The demo dataset: ``labdeck-local.demo`` with customers, products and orders.

Generated deterministically (a seeded PRNG, no clock), so every machine gets the
same rows and the welcome notebook can print the same numbers. Seeding is
idempotent: it replaces the three tables with the same content each time.

The story a join + aggregate tells: 2024 revenue grows month over month with a
November/December peak; "Outdoor" sells best in summer, "Home" in winter, and
customers in a few countries spend most.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import random
from typing import Any

import pyarrow as pa

from labdeck.hub import contract
from .engine import Engine
from .translate import TableRef

DEMO_PROJECT = contract.LOCAL_GCP_PROJECT
DEMO_DATASET = "demo"

N_CUSTOMERS = 2000
N_ORDERS = 6000

_FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
          "Edsger", "Radia", "Tim", "Hedy", "John", "Katherine", "Guido", "Sophie", "Yukihiro"]
_LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov",
         "Ritchie", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "Backus",
         "Johnson", "van Rossum", "Wilson", "Matsumoto"]
_COUNTRIES = [("US", 30), ("DE", 14), ("GB", 12), ("FR", 10), ("JP", 9), ("BR", 8),
              ("IN", 8), ("CA", 5), ("AU", 4)]
_SEGMENTS = [("consumer", 70), ("small_business", 22), ("enterprise", 8)]
_CATEGORIES = {
    "Outdoor": ["Tent", "Trail Shoes", "Headlamp", "Camp Stove", "Rain Jacket", "Backpack"],
    "Home": ["Kettle", "Wool Blanket", "Desk Lamp", "Coffee Grinder", "Teapot", "Rug"],
    "Gadgets": ["Earbuds", "E-Reader", "Smart Plug", "Power Bank", "Webcam", "Keyboard"],
    "Books": ["SQL Primer", "Stats Handbook", "Python Cookbook", "Data Stories", "R Basics",
              "Cloud Patterns"],
}
# month -> relative demand, per category (seasonality)
_SEASON = {
    "Outdoor": [0.5, 0.5, 0.8, 1.0, 1.3, 1.6, 1.8, 1.6, 1.1, 0.8, 0.7, 0.9],
    "Home": [1.4, 1.2, 1.0, 0.8, 0.7, 0.6, 0.6, 0.7, 0.9, 1.1, 1.5, 1.9],
    "Gadgets": [0.8, 0.8, 0.9, 0.9, 1.0, 1.0, 1.0, 1.1, 1.1, 1.2, 1.8, 2.2],
    "Books": [1.2, 1.0, 1.0, 0.9, 0.9, 0.8, 0.9, 1.0, 1.3, 1.1, 1.0, 1.4],
}

CUSTOMERS_SCHEMA = [
    {"name": "customer_id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING"},
    {"name": "email", "type": "STRING"},
    {"name": "country", "type": "STRING"},
    {"name": "segment", "type": "STRING"},
    {"name": "signup_date", "type": "DATE"},
]
PRODUCTS_SCHEMA = [
    {"name": "product_id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING"},
    {"name": "category", "type": "STRING"},
    {"name": "unit_price", "type": "NUMERIC"},
    {"name": "launched_at", "type": "TIMESTAMP"},
]
ORDERS_SCHEMA = [
    {"name": "order_id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "customer_id", "type": "INTEGER"},
    {"name": "product_id", "type": "INTEGER"},
    {"name": "quantity", "type": "INTEGER"},
    {"name": "amount", "type": "NUMERIC"},
    {"name": "status", "type": "STRING"},
    {"name": "order_date", "type": "DATE"},
    {"name": "ordered_at", "type": "TIMESTAMP"},
]

_UTC = datetime.timezone.utc


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _customers(rng: random.Random) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {f["name"]: [] for f in CUSTOMERS_SCHEMA}
    start = datetime.date(2022, 1, 1)
    for cid in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        cols["customer_id"].append(cid)
        cols["name"].append(f"{first} {last}")
        cols["email"].append(f"{first}.{last}.{cid}@example.com".lower().replace(" ", ""))
        cols["country"].append(_weighted(rng, _COUNTRIES))
        cols["segment"].append(_weighted(rng, _SEGMENTS))
        cols["signup_date"].append(start + datetime.timedelta(days=rng.randrange(0, 1000)))
    return cols


def _products(rng: random.Random) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {f["name"]: [] for f in PRODUCTS_SCHEMA}
    pid = 0
    for category, names in _CATEGORIES.items():
        for name in names:
            for edition in ("", " Pro"):
                pid += 1
                base = rng.uniform(8, 120) * (2.2 if edition else 1.0)
                cols["product_id"].append(pid)
                cols["name"].append(name + edition)
                cols["category"].append(category)
                cols["unit_price"].append(decimal.Decimal(f"{base:.2f}"))
                cols["launched_at"].append(
                    datetime.datetime(2021, 1, 1, tzinfo=_UTC)
                    + datetime.timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60))
                )
    return cols


def _orders(rng: random.Random, products: dict[str, list[Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {f["name"]: [] for f in ORDERS_SCHEMA}
    # demand weight per (month, product): seasonality times a steady 2024 growth trend
    slots = []
    for month in range(12):
        growth = 1.0 + 0.06 * month
        for i, category in enumerate(products["category"]):
            slots.append((month, i, _SEASON[category][month] * growth))
    slot_cum = list(itertools.accumulate(s[2] for s in slots))
    customer_ids = range(1, N_CUSTOMERS + 1)
    customer_cum = list(itertools.accumulate(1.0 + (cid % 7 == 0) * 3.0 for cid in customer_ids))
    for oid in range(1, N_ORDERS + 1):
        month, pidx, _ = rng.choices(slots, cum_weights=slot_cum)[0]
        day = rng.randrange(0, 28)
        ordered_at = datetime.datetime(2024, month + 1, 1, tzinfo=_UTC) + datetime.timedelta(
            days=day, seconds=rng.randrange(0, 86400)
        )
        quantity = rng.choices([1, 2, 3, 4, 5], weights=[60, 22, 10, 5, 3])[0]
        price = products["unit_price"][pidx]
        cols["order_id"].append(oid)
        cols["customer_id"].append(
            rng.choices(customer_ids, cum_weights=customer_cum)[0]
        )
        cols["product_id"].append(products["product_id"][pidx])
        cols["quantity"].append(quantity)
        cols["amount"].append((price * quantity).quantize(decimal.Decimal("0.01")))
        cols["status"].append(_weighted(rng, [("delivered", 88), ("returned", 7), ("cancelled", 5)]))
        cols["order_date"].append(ordered_at.date())
        cols["ordered_at"].append(ordered_at)
    return cols


_ARROW = {
    "INTEGER": pa.int64(),
    "STRING": pa.string(),
    "DATE": pa.date32(),
    "NUMERIC": pa.decimal128(38, 9),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def _arrow(cols: dict[str, list[Any]], fields: list[dict[str, Any]]) -> pa.Table:
    return pa.table({f["name"]: pa.array(cols[f["name"]], _ARROW[f["type"]]) for f in fields})


def demo_tables() -> dict[str, tuple[list[dict[str, Any]], pa.Table]]:
    """The demo tables: ``{table_id: (schema fields, rows)}``; same output on every call."""
    rng = random.Random(20240101)
    customers = _customers(rng)
    products = _products(rng)
    orders = _orders(rng, products)
    return {
        "customers": (CUSTOMERS_SCHEMA, _arrow(customers, CUSTOMERS_SCHEMA)),
        "products": (PRODUCTS_SCHEMA, _arrow(products, PRODUCTS_SCHEMA)),
        "orders": (ORDERS_SCHEMA, _arrow(orders, ORDERS_SCHEMA)),
    }


def seed(engine: Engine, project: str = DEMO_PROJECT, dataset: str = DEMO_DATASET) -> dict[str, int]:
    """Create (or recreate, identically) the demo dataset.

    Parameters
    ----------
    engine : Engine
        Where to write.
    project, dataset : str
        Where the demo tables go (default ``labdeck-local.demo``).

    Returns
    -------
    dict
        Row count per table.
    """
    counts = {}
    for table_id, (fields, data) in demo_tables().items():
        engine.replace_table(TableRef(project, dataset, table_id), fields, data)
        counts[table_id] = data.num_rows
    return counts
