"""``guestgraph demo``: a realistic data set, generated *as source payloads* and fed through
the real import path (mappers, inbox, identity, projector), then served.

Several stores in different time zones; a menu with dietary tags; people present in Square
(POS), Toast (POS guests) and HubSpot (CRM) with identity noise (email case and spacing,
phone formats, missing fields, a shared house phone); six months of orders with status
histories (each order arrives as several versions); Square loyalty ledgers; support
interactions. ``--live`` keeps producing orders and status changes every few seconds.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from domain.events import MenuItemUpserted, StoreRef, StoreUpserted
from domain.model import Source

NOW = datetime(2026, 11, 1, tzinfo=UTC)

STORES = [
    # (source, external id, name, timezone, country, currency)
    (Source.SQUARE, "LSQ-SF-MISSION", "Mission Street", "America/Los_Angeles", "US", "USD"),
    (Source.SQUARE, "LSQ-NYC-SOHO", "SoHo", "America/New_York", "US", "USD"),
    (Source.TOAST, "toast-chicago-loop", "Chicago Loop", "America/Chicago", "US", "USD"),
    (Source.TOAST, "toast-london-soho", "London Soho", "Europe/London", "GB", "GBP"),
]

MENU = [
    # (catalog id, name, price in minor units, tags)
    ("ITEM-MARGHERITA", "Margherita Pizza", 1450, ["vegetarian"]),
    ("ITEM-PEPPERONI", "Pepperoni Pizza", 1650, []),
    ("ITEM-VEGAN-BOWL", "Vegan Power Bowl", 1295, ["vegan", "vegetarian", "gluten-free"]),
    ("ITEM-CAESAR", "Caesar Salad", 995, ["vegetarian"]),
    ("ITEM-GF-PASTA", "Gluten-free Penne", 1395, ["gluten-free", "vegetarian"]),
    ("ITEM-BURGER", "Smash Burger", 1350, []),
    ("ITEM-FALAFEL", "Falafel Wrap", 1095, ["vegan", "vegetarian"]),
    ("ITEM-TIRAMISU", "Tiramisu", 750, ["vegetarian", "contains-nuts"]),
    ("ITEM-LEMONADE", "Lemonade", 395, ["vegan", "vegetarian", "gluten-free"]),
    ("ITEM-ESPRESSO", "Espresso", 325, ["vegan", "vegetarian", "gluten-free"]),
]

FIRST = [
    "Dana",
    "Sam",
    "Alex",
    "Priya",
    "Wei",
    "Maria",
    "José",
    "Aisha",
    "Tom",
    "Yuki",
    "Olu",
    "Chloé",
    "Noah",
    "Fatima",
    "Liam",
    "Sofia",
    "Kenji",
    "Amara",
    "Lucas",
    "Zoe",
]
LAST = [
    "Ortiz",
    "Lee",
    "Nguyen",
    "Patel",
    "Chen",
    "Garcia",
    "Smith",
    "Okafor",
    "Müller",
    "Kowalski",
    "Rossi",
    "Tanaka",
    "Brown",
    "Haddad",
    "Silva",
    "Dubois",
    "Kim",
    "Novak",
]
HOUSE_PHONE = "+14155550100"  # a shared landline: several people give it


@dataclass
class Person:
    key: str
    given: str
    family: str
    email: str | None
    phone: str | None
    square_id: str | None
    toast_guid: str | None
    hubspot_id: str | None


def _noisy_email(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        return email.upper()
    if roll < 0.35:
        return f"  {email.title()} "
    return email


def _noisy_phone(rng: random.Random, digits: str) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1{digits}", f"1 {a} {b} {c}", digits])


def people(rng: random.Random, n: int) -> list[Person]:
    out = []
    for i in range(n):
        given, family = rng.choice(FIRST), rng.choice(LAST)
        email = f"{given.lower()}.{family.lower()}{i}@example.com".replace("é", "e").replace(
            "ü", "u"
        )
        digits = f"415{rng.randrange(2000000, 9999999)}"
        phone = HOUSE_PHONE[2:] if rng.random() < 0.02 else digits
        out.append(
            Person(
                key=f"p{i}",
                given=given,
                family=family,
                email=email if rng.random() > 0.1 else None,
                phone=phone if rng.random() > 0.15 else None,
                square_id=f"SQC{i:07d}" if rng.random() < 0.7 else None,
                toast_guid=str(uuid.UUID(int=rng.getrandbits(128))) if rng.random() < 0.4 else None,
                hubspot_id=str(50_000_000 + i) if rng.random() < 0.5 else None,
            )
        )
    return out


def square_customer(rng: random.Random, p: Person) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": p.square_id,
        "given_name": p.given,
        "family_name": p.family if rng.random() > 0.05 else None,
        "creation_source": "DIRECTORY",
        "version": 1,
        "created_at": (NOW - timedelta(days=200)).isoformat(),
        "updated_at": (NOW - timedelta(days=rng.randrange(1, 200))).isoformat(),
    }
    if p.email:
        body["email_address"] = _noisy_email(rng, p.email)
    if p.phone:
        body["phone_number"] = _noisy_phone(rng, p.phone)
    return body


def hubspot_contact(rng: random.Random, p: Person) -> dict[str, Any]:
    props: dict[str, Any] = {
        "firstname": p.given,
        "lastname": p.family,
        "lifecyclestage": rng.choice(["subscriber", "lead", "customer", "evangelist"]),
    }
    if p.email:
        props["email"] = _noisy_email(rng, p.email)
    if p.phone and rng.random() < 0.7:
        props["phone"] = _noisy_phone(rng, p.phone)
    updated = NOW - timedelta(days=rng.randrange(1, 180))
    return {"id": p.hubspot_id, "properties": props, "updatedAt": updated.isoformat()}


SQUARE_FLOW = ["PROPOSED", "RESERVED", "PREPARED", "COMPLETED"]


def square_order_versions(
    rng: random.Random, p: Person | None, location: str, placed: datetime, n_id: int
) -> list[dict[str, Any]]:
    items = rng.sample(MENU, rng.randrange(1, 4))
    lines = []
    total = 0
    for uid, (catalog, name, price, _tags) in enumerate(items):
        qty = rng.choice([1, 1, 1, 2, 3])
        total += price * qty
        lines.append(
            {
                "uid": f"li-{uid}",
                "name": name,
                "quantity": str(qty),
                "item_type": "ITEM",
                "catalog_object_id": catalog,
                "base_price_money": {"amount": price, "currency": "USD"},
                "total_money": {"amount": price * qty, "currency": "USD"},
            }
        )
    tax = round(total * 0.0875)
    kind = rng.choice(["PICKUP", "PICKUP", "DELIVERY"])
    canceled = rng.random() < 0.04
    recent = NOW - placed < timedelta(hours=3)
    last_step = rng.randrange(0, 3) if recent else 3
    versions = []
    for step in range(last_step + 1):
        if step not in (0, last_step) and rng.random() < 0.5:
            continue  # not every intermediate version reaches us
        state, ful = "OPEN", SQUARE_FLOW[step]
        if step == 3:
            state = "COMPLETED"
        if canceled and step == last_step and step > 0:
            state, ful = "CANCELED", "CANCELED"
        updated = placed + timedelta(minutes=7 * step)
        order: dict[str, Any] = {
            "id": f"SQO{n_id:08d}",
            "location_id": location,
            "state": state,
            "version": step + 1,
            "created_at": placed.isoformat(),
            "updated_at": updated.isoformat(),
            "line_items": lines,
            "fulfillments": [
                {
                    "uid": "f1",
                    "type": kind,
                    "state": ful,
                    "pickup_details": {"pickup_at": (placed + timedelta(minutes=20)).isoformat()},
                }
            ],
            "total_money": {"amount": total + tax, "currency": "USD"},
            "total_tax_money": {"amount": tax, "currency": "USD"},
            "source": {"name": rng.choice(["Square Online", "Point of Sale", "DoorDash"])},
        }
        if p is not None and p.square_id:
            order["customer_id"] = p.square_id
        versions.append(order)
    return versions


def toast_order_versions(
    rng: random.Random, p: Person | None, restaurant: str, placed: datetime, currency: str
) -> list[dict[str, Any]]:
    items = rng.sample(MENU, rng.randrange(1, 4))
    factor = 0.8 if currency == "GBP" else 1.0
    selections = []
    amount = 0.0
    for catalog, name, price, _ in items:
        qty = float(rng.choice([1, 1, 2]))
        line = round(price / 100 * factor * qty, 2)
        amount += line
        selections.append(
            {
                "guid": str(uuid.UUID(int=rng.getrandbits(128))),
                "item": {"guid": catalog},
                "displayName": name,
                "quantity": qty,
                "preDiscountPrice": line,
                "price": line,
                "fulfillmentStatus": "NEW",
                "modifiers": [],
            }
        )
    amount = round(amount, 2)
    tax = round(amount * 0.1, 2)
    guid = str(uuid.UUID(int=rng.getrandbits(128)))
    recent = NOW - placed < timedelta(hours=3)
    steps = [("NEW", "OPEN"), ("SENT", "OPEN"), ("READY", "PAID"), ("READY", "CLOSED")]
    last = rng.randrange(0, 3) if recent else 3
    versions = []
    for step in range(last + 1):
        if step not in (0, last) and rng.random() < 0.5:
            continue
        fulfil, payment = steps[step]
        check: dict[str, Any] = {
            "guid": f"{guid}-check",
            "displayNumber": str(rng.randrange(1, 999)),
            "paymentStatus": payment,
            "selections": [dict(s, fulfillmentStatus=fulfil) for s in selections],
            "amount": amount,
            "taxAmount": tax,
            "totalAmount": round(amount + tax, 2),
            "payments": [
                {
                    "guid": f"{guid}-pay",
                    "type": "CREDIT",
                    "amount": round(amount + tax, 2),
                    "tipAmount": round(amount * rng.choice([0, 0.1, 0.15, 0.2]), 2),
                    "paymentStatus": "CAPTURED",
                }
            ]
            if payment != "OPEN"
            else [],
        }
        if p is not None and p.toast_guid:
            guest: dict[str, Any] = {
                "guid": p.toast_guid,
                "firstName": p.given,
                "lastName": p.family,
            }
            if p.email:
                guest["email"] = _noisy_email(rng, p.email)
            if p.phone:
                guest["phone"], guest["phoneCountryCode"] = p.phone, "1"
            check["customer"] = guest
        versions.append(
            {
                "restaurantGuid": restaurant,
                "guid": guid,
                "externalId": f"ext-{guid[:8]}",
                "source": rng.choice(["In Store", "Online", "Toast Pickup App"]),
                "openedDate": placed.isoformat(),
                "modifiedDate": (placed + timedelta(minutes=6 * step)).isoformat(),
                "approvalStatus": "APPROVED",
                "voided": False,
                "deleted": False,
                "checks": [check],
            }
        )
    return versions


@dataclass
class DemoData:
    square_customers: list[dict[str, Any]]
    hubspot_contacts: list[dict[str, Any]]
    square_orders: list[dict[str, Any]]
    toast_orders: list[dict[str, Any]]
    loyalty_webhooks: list[dict[str, Any]]
    canonical: list[dict[str, Any]]


def _placed_at(rng: random.Random) -> datetime:
    if rng.random() < 0.03:
        return NOW - timedelta(minutes=rng.randrange(5, 150))
    return NOW - timedelta(days=rng.uniform(0, 182), hours=rng.uniform(0, 1))


def generate(customers: int, seed: int) -> DemoData:
    """The whole data set as vendor-shaped payloads (deterministic for a seed)."""
    rng = random.Random(seed)
    folks = people(rng, customers)
    data = DemoData([], [], [], [], [], [])
    for person in folks:
        if person.square_id:
            data.square_customers.append(square_customer(rng, person))
        if person.hubspot_id:
            data.hubspot_contacts.append(hubspot_contact(rng, person))
    order_no = 0
    buyers: list[Person | None] = [*folks, *([None] * (customers // 10))]  # some anonymous
    for p in buyers:
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6])):
            placed = _placed_at(rng)
            order_no += 1
            use_toast = (p is None or p.toast_guid) and rng.random() < 0.5
            if use_toast:
                _, rid, _, _, _, cur = rng.choice([s for s in STORES if s[0] is Source.TOAST])
                data.toast_orders.extend(toast_order_versions(rng, p, rid, placed, cur))
            else:
                _, loc, *_ = rng.choice([s for s in STORES if s[0] is Source.SQUARE])
                versions = square_order_versions(rng, p, loc, placed, order_no)
                data.square_orders.extend(versions)
                if p is not None and p.square_id and versions[-1]["state"] == "COMPLETED":
                    data.loyalty_webhooks.append(_loyalty(p, versions[-1], order_no))
    for n, person in enumerate(rng.sample(folks, max(1, customers // 20))):
        data.canonical.append(
            {
                "id": f"demo-interaction-{n}",
                "type": "interaction.recorded",
                "data": {
                    "id": f"call-{n}",
                    "customer_id": f"demo-{person.key}",
                    "channel": rng.choice(["phone", "email", "chat"]),
                    "kind": rng.choice(["question", "complaint", "compliment"]),
                    "subject": rng.choice(
                        ["Where is my order?", "Allergy question", "Great pizza", "Refund request"]
                    ),
                    "at": (NOW - timedelta(days=rng.uniform(0, 60))).isoformat(),
                },
            }
        )
        data.canonical.insert(
            0,
            {
                "id": f"demo-customer-{person.key}",
                "type": "customer.upserted",
                "data": {
                    "id": f"demo-{person.key}",
                    "given_name": person.given,
                    "family_name": person.family,
                    "email": person.email,
                    "phone": person.phone,
                },
            },
        )
    return data


def _loyalty(p: Person, order: dict[str, Any], n: int) -> dict[str, Any]:
    points = order["total_money"]["amount"] // 100
    return {
        "merchant_id": "DEMO",
        "type": "loyalty.event.created",
        "event_id": f"demo-loyalty-{n}",
        "created_at": order["updated_at"],
        "data": {
            "type": "loyalty_event",
            "id": f"lev-{n}",
            "object": {
                "loyalty_event": {
                    "id": f"lev-{n}",
                    "type": "ACCUMULATE_POINTS",
                    "loyalty_account_id": f"la-{p.key}",
                    "source": "SQUARE",
                    "created_at": order["updated_at"],
                    "accumulate_points": {
                        "loyalty_program_id": "demo-rewards",
                        "points": points,
                        "order_id": order["id"],
                    },
                }
            },
        },
    }


def _account_links(data: DemoData) -> list[dict[str, Any]]:
    seen: dict[str, str] = {}
    for hook in data.loyalty_webhooks:
        event = hook["data"]["object"]["loyalty_event"]
        order_id = event["accumulate_points"]["order_id"]
        seen.setdefault(event["loyalty_account_id"], order_id)
    customers = {o["id"]: o.get("customer_id") for o in data.square_orders}
    return [
        {
            "merchant_id": "DEMO",
            "type": "loyalty.account.created",
            "event_id": f"demo-account-{account}",
            "created_at": NOW.isoformat(),
            "data": {
                "type": "loyalty_account",
                "id": account,
                "object": {
                    "loyalty_account": {
                        "id": account,
                        "program_id": "demo-rewards",
                        "customer_id": customers[order],
                    }
                },
            },
        }
        for account, order in seen.items()
    ]


async def seed(url: str, customers: int, seed_value: int) -> dict[str, int]:
    """Generate and import the demo data set; return row counts by kind."""
    import orjson

    from api import importer
    from api.ingestion import ingest, square_deliveries
    from readmodel.database import create_engine
    from readmodel.projector import apply_events

    data = generate(customers, seed_value)
    engine = create_engine(url, pool_size=2)
    counts: dict[str, int] = {}
    try:
        async with engine.begin() as conn:
            events: list[Any] = [
                StoreUpserted(StoreRef(src, ext, name=name, timezone=tz, country=cc, currency=cur))
                for src, ext, name, tz, cc, cur in STORES
            ]
            events += [
                MenuItemUpserted(src, catalog, None, name, price, "USD", tags=tuple(tags))
                for src in (Source.SQUARE, Source.TOAST)
                for catalog, name, price, tags in MENU
            ]
            await apply_events(conn, events, actor="demo")
        with tempfile.TemporaryDirectory(prefix="guestgraph-demo-") as folder:
            for kind, rows in (
                ("square-customers", data.square_customers),
                ("hubspot-contacts", data.hubspot_contacts),
                ("square-orders", data.square_orders),
                ("toast-orders", data.toast_orders),
                ("canonical", data.canonical),
            ):
                path = Path(folder) / f"{kind}.ndjson"
                path.write_bytes(importer.ndjson(rows))
                summary = await importer.run_import(engine, path, kind)
                counts[kind] = summary.rows
        hooks = _account_links(data) + data.loyalty_webhooks
        for start in range(0, len(hooks), 200):
            deliveries = [
                d for h in hooks[start : start + 200] for d in square_deliveries(orjson.dumps(h))
            ]
            await ingest(engine, deliveries, actor="demo")
        counts["square-loyalty"] = len(hooks)
    finally:
        await engine.dispose()
    return counts


async def live(url: str, seed_value: int, interval_s: float = 3.0) -> None:
    """Forever: a new Square order now and then, and the next status of open ones."""
    from api import importer
    from api.ingestion import ingest
    from readmodel.database import create_engine

    rng = random.Random(seed_value + 1)
    engine = create_engine(url, pool_size=1)
    open_orders: list[list[dict[str, Any]]] = []
    n = 10_000_000
    try:
        while True:
            if not open_orders or rng.random() < 0.4:
                n += 1
                _, loc, *_ = rng.choice([s for s in STORES if s[0] is Source.SQUARE])
                placed = datetime.now(UTC)
                who = Person(
                    "live",
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    None,
                    None,
                    f"SQC{rng.randrange(0, 2000):07d}",
                    None,
                    None,
                )
                versions = square_order_versions(rng, who, loc, placed - timedelta(hours=4), n)
                for i, v in enumerate(versions):
                    v["created_at"] = placed.isoformat()
                    v["updated_at"] = (placed + timedelta(seconds=i)).isoformat()
                open_orders.append(versions)
            batch = open_orders[: rng.randrange(1, 4)]
            async with engine.connect() as conn:
                deliveries = [
                    await importer.delivery_for(conn, "square-orders", versions.pop(0))
                    for versions in batch
                ]
            for d in deliveries:
                for event in d.events:  # status times are "now" for a live console
                    object.__setattr__(event, "status_at", datetime.now(UTC))
            await ingest(engine, deliveries, actor="demo:live")
            open_orders = [v for v in open_orders if v]
            await asyncio.sleep(interval_s)
    finally:
        await engine.dispose()


def demo_command(
    customers: int = typer.Option(2000, min=10, help="people to generate"),
    seed_value: int = typer.Option(7, "--seed", help="random seed (same seed, same data)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    live_mode: bool = typer.Option(False, "--live", help="keep producing orders"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="serve after seeding"),
) -> None:
    """Seed a realistic demo data set through the real import path, then serve it."""
    from api.cli import _migrate, _settings, resolve_database_url, run_server

    settings = _settings()
    url = resolve_database_url(settings)
    _migrate(url)
    counts = asyncio.run(seed(url, customers, seed_value))
    typer.echo("demo data: " + ", ".join(f"{k} {v}" for k, v in counts.items()), err=True)
    if not serve:
        return
    if "GUESTGRAPH_MODE" not in os.environ:
        # a local playground: GraphiQL and no token needed (the server binds to ``host``,
        # 127.0.0.1 by default); GUESTGRAPH_MODE=production tries the demo with auth on
        os.environ["GUESTGRAPH_MODE"] = "development"
    typer.echo(
        f"demo: {os.environ['GUESTGRAPH_MODE']} mode; GraphiQL and the API at "
        f"http://{host}:{port}/graphql, the support console at http://{host}:{port}/console",
        err=True,
    )
    if live_mode:
        threading.Thread(
            target=lambda: asyncio.run(live(url, seed_value)), name="demo-live", daemon=True
        ).start()
    run_server(settings, url, host=host, port=port, workers=1)
