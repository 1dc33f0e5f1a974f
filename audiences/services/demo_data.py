"""Deterministic, realistic XDM data for the demo sandbox (Faker + a fixed seed).

People of a retail brand, seen through four datasets:
- "CRM Profiles" (profile): keyed by CRMID, with Email and often Phone; name, birth date,
  home address, lifetime value, email consent.
- "Loyalty Members" (profile): about half the people, keyed by a loyalty id with the same
  Email — so the identity graph stitches them to CRM — and sometimes a *different* home
  address or name (a move, a nickname): the two merge policies then disagree visibly.
- "Web & App Events" (event): page views (with the homepage flag Adobe's examples use),
  product views, cart adds and removals, checkouts with order totals and product lists, and
  abandons; keyed by ECID, and by Email too when the visitor is signed in (which links the
  device to the person).
- "Email Engagement" (event): opens and clicks, keyed by Email.

Activity has a daily rhythm (evenings are busy, nights quiet) and a weekly one (weekends
shop more). Same seed and same `now` give byte-identical records.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from faker import Faker

SEED = 20261123
CRM = "CRM Profiles"
LOYALTY = "Loyalty Members"
WEB = "Web & App Events"
EMAIL = "Email Engagement"
PROFILE_SCHEMA = "https://ns.adobe.com/xdm/context/profile"
EVENT_SCHEMA = "https://ns.adobe.com/xdm/context/experienceevent"

STATES = [("CA", 0.16), ("NY", 0.09), ("TX", 0.1), ("FL", 0.08), ("WA", 0.05), ("IL", 0.05),
          ("MA", 0.04), ("CO", 0.04), ("GA", 0.04), ("OR", 0.03)]
PRODUCTS = [
    ("SKU-1001", "Trail Running Shoes", 129.0), ("SKU-1002", "Red Leather Sneakers", 89.0),
    ("SKU-1003", "Merino Wool Socks", 19.0), ("SKU-1004", "Waterproof Jacket", 199.0),
    ("SKU-1005", "Yoga Mat", 45.0), ("SKU-1006", "Insulated Bottle", 29.0),
    ("SKU-1007", "Hiking Backpack", 149.0), ("SKU-1008", "Fleece Hoodie", 69.0),
    ("SKU-1009", "Smart Watch", 249.0), ("SKU-1010", "Sunglasses", 119.0),
]
PAGES = ["home", "women", "men", "sale", "new-arrivals", "stores", "help", "account"]
TIERS = [("bronze", 0.5), ("silver", 0.3), ("gold", 0.15), ("platinum", 0.05)]
# Relative activity per hour of day (UTC) and per weekday (Monday first).
HOURLY = [0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9,
          0.95, 0.9, 0.85, 0.9, 1.0, 1.1, 1.3, 1.5, 1.6, 1.4, 1.0, 0.6]
WEEKLY = [0.9, 0.85, 0.9, 0.95, 1.05, 1.3, 1.25]


@dataclass
class Person:
    crm_id: str
    email: str
    phone: str | None
    ecids: list[str]
    loyalty_id: str | None
    activity: float  # expected sessions per day
    buyer: float  # probability that a session converts


@dataclass
class DemoData:
    """Records per dataset name, in ingestion order."""

    now: datetime
    records: dict[str, list[dict]] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(r) for r in self.records.values())


def _weighted(rng: random.Random, pairs):
    total = sum(w for _, w in pairs)
    pick = rng.random() * total
    for value, weight in pairs:
        pick -= weight
        if pick <= 0:
            return value
    return pairs[-1][0]


def _ecid(rng: random.Random) -> str:
    # ECIDs are 38 digits.
    return str(rng.getrandbits(128) % 10**38).zfill(38)


class Pools:
    """Faker is slow per call: draw names and addresses from pools it fills once."""

    def __init__(self, fake: Faker, size: int = 1500) -> None:
        self.first = [fake.first_name() for _ in range(size)]
        self.last = [fake.last_name() for _ in range(size)]
        self.street = [fake.street_address() for _ in range(size)]
        self.city = [fake.city() for _ in range(size // 3)]
        self.postcode = [fake.postcode() for _ in range(size // 3)]
        self.state = [fake.state_abbr(include_territories=False) for _ in range(200)]


def generate(*, profiles: int = 20_000, days: int = 30, now: datetime,
             seed: int = SEED) -> DemoData:
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    fake = Pools(fake)
    now = now.astimezone(UTC).replace(microsecond=0)
    data = DemoData(now=now, records={CRM: [], LOYALTY: [], WEB: [], EMAIL: []})
    for n in range(profiles):
        person = _person(rng, fake, n)
        data.people.append(person)
        data.records[CRM].append(_crm_record(rng, fake, person, now))
        if person.loyalty_id:
            data.records[LOYALTY].append(_loyalty_record(rng, fake, person, data.records[CRM][-1],
                                                         now))
    data.records[WEB], data.records[EMAIL] = _events(rng, data.people, now, days)
    return data


def _person(rng: random.Random, fake: Pools, n: int) -> Person:
    first = rng.choice(fake.first)
    last = rng.choice(fake.last)
    domain = rng.choice(["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "example.com"])
    email = f"{first}.{last}{n}@{domain}".lower()
    # Activity is long-tailed: most people visit now and then, a few every day.
    activity = min(4.0, rng.lognormvariate(-2.9, 1.0))
    return Person(
        crm_id=f"CRM{100000 + n}", email=email,
        phone=f"+1{rng.randint(2000000000, 9999999999)}" if rng.random() < 0.7 else None,
        ecids=[_ecid(rng) for _ in range(1 if rng.random() < 0.75 else 2)],
        loyalty_id=f"LOY{500000 + n}" if rng.random() < 0.45 else None,
        activity=activity, buyer=min(0.5, rng.betavariate(2, 12) * (1.5 if activity > 1 else 1)))


def _state(rng: random.Random) -> str:
    return _weighted(rng, STATES + [("OTHER", 0.32)])


def _address(rng: random.Random, fake: Pools) -> dict:
    state = _state(rng)
    if state == "OTHER":
        state = rng.choice(fake.state)
    country = "US" if rng.random() < 0.93 else rng.choice(["CA", "GB", "MX"])
    return {"street1": rng.choice(fake.street), "city": rng.choice(fake.city),
            "stateProvince": state, "postalCode": rng.choice(fake.postcode),
            "countryISO": country,
            "country": {"US": "United States", "CA": "Canada", "GB": "United Kingdom",
                        "MX": "Mexico"}[country]}


def _crm_record(rng: random.Random, fake: Pools, person: Person, now: datetime) -> dict:
    identity = {"CRMID": [{"id": person.crm_id, "primary": True}],
                "Email": [{"id": person.email}]}
    if person.phone:
        identity["Phone"] = [{"id": person.phone}]
    birth = (now - timedelta(days=rng.randint(18 * 365, 82 * 365))).date()
    first = person.email.split("@")[0].split(".")[0].title()
    last = person.email.split("@")[0].split(".")[1].rstrip("0123456789").title()
    record = {
        "_id": f"crm-{person.crm_id}",
        "identityMap": identity,
        "person": {"name": {"firstName": first, "lastName": last},
                   "birthDate": birth.isoformat(), "gender": rng.choice(
                       ["female", "male", "not_specified"])},
        "personalEmail": {"address": person.email},
        "homeAddress": _address(rng, fake),
        "customer": {"lifetimeValue": round(rng.lognormvariate(5, 1.1), 2),
                     "since": (now - timedelta(days=rng.randint(30, 3650))).date().isoformat()},
        "consents": {"marketing": {"email": {"val": "y" if rng.random() < 0.72 else "n"}}},
    }
    if person.phone:
        record["mobilePhone"] = {"number": person.phone}
    return record


def _loyalty_record(rng: random.Random, fake: Pools, person: Person, crm: dict,
                    now: datetime) -> dict:
    tier = _weighted(rng, TIERS)
    record = {
        "_id": f"loy-{person.loyalty_id}",
        "identityMap": {"LoyaltyID": [{"id": person.loyalty_id, "primary": True}],
                        "Email": [{"id": person.email}]},
        "loyalty": {"tier": tier, "points": int(rng.lognormvariate(6, 1)),
                    "memberSince": (now - timedelta(days=rng.randint(10, 2000))).date()
                    .isoformat()},
    }
    roll = rng.random()
    if roll < 0.18:
        # Moved since the CRM record was written: the loyalty app has the new address.
        record["homeAddress"] = _address(rng, fake)
    elif roll < 0.3:
        # Goes by a nickname in the app.
        first = crm["person"]["name"]["firstName"]
        record["person"] = {"name": {"firstName": first[:3] if len(first) > 4 else first + "y",
                                     "lastName": crm["person"]["name"]["lastName"]}}
    return record


def _rate(moment: datetime) -> float:
    return HOURLY[moment.hour] * WEEKLY[moment.weekday()]


def _events(rng: random.Random, people: list[Person], now: datetime, days: int
            ) -> tuple[list[dict], list[dict]]:
    web: list[dict] = []
    email: list[dict] = []
    start = now - timedelta(days=days)
    # A campaign every third day, the latest one about 20 hours ago (so "engaged in the last
    # day" always has people in it, whatever the hour the demo is built).
    latest = (now - timedelta(hours=20)).replace(minute=0, second=0, microsecond=0)
    campaign_days = sorted(latest - timedelta(days=3 * k) for k in range(days // 3 + 1)
                           if latest - timedelta(days=3 * k) >= start)
    hours = days * 24
    for index, person in enumerate(people):
        sessions = _poisson(rng, person.activity * days)
        for s in range(sessions):
            # Pick an hour weighted by the rhythm (rejection sampling).
            while True:
                at = start + timedelta(seconds=rng.random() * hours * 3600)
                if rng.random() * 1.6 * 1.3 <= _rate(at):
                    break
            if at >= now:
                at = now - timedelta(seconds=rng.randint(1, 3600))
            web.extend(_session(rng, person, at, now, f"{index}-{s}"))
        for c, day in enumerate(campaign_days):
            if rng.random() < 0.6:
                sent = day + timedelta(minutes=rng.randint(0, 240))
                if sent >= now:
                    continue
                if rng.random() < 0.35:
                    opened = sent + timedelta(minutes=rng.randint(1, 600))
                    if opened < now:
                        email.append(_email_event(person, "directMarketing.emailOpened",
                                                  opened, f"{index}-{c}-o", c))
                        if rng.random() < 0.3:
                            clicked = opened + timedelta(minutes=rng.randint(0, 30))
                            if clicked < now:
                                email.append(_email_event(person, "directMarketing.emailClicked",
                                                          clicked, f"{index}-{c}-c", c))
    # A live tail, so the short-window audiences have people in them at any size: a few
    # visitors are on the site right now with something in their cart, and some come back to
    # buy what they abandoned yesterday.
    for index, person in enumerate(people[:max(3, len(people) // 100)]):
        web.extend(_tail(rng, person, now, index))
    web.sort(key=lambda e: e["timestamp"])
    email.sort(key=lambda e: e["timestamp"])
    return web, email


def _tail(rng: random.Random, person: Person, now: datetime, index: int) -> list[dict]:
    identity = _identity(person, person.ecids[0], True)
    product = rng.choice(PRODUCTS)
    items = {"productListItems": [_item(product)]}
    steps = [(timedelta(minutes=25), "web.webpagedetails.pageViews", _page("home")),
             (timedelta(minutes=20), "commerce.productListAdds", items)]
    if index % 2:
        steps += [(timedelta(hours=30), "commerce.abandons",
                   {**items, "commerce": {"abandons": {"value": 1}}}),
                  (timedelta(hours=5), "commerce.checkouts",
                   {**items, "commerce": {"order": {"priceTotal": product[2],
                                                    "currencyCode": "USD",
                                                    "purchaseID": f"ORD-tail-{index}"},
                                          "checkouts": {"value": 1}}})]
    return [{"_id": f"tail-{index}-{n}", "timestamp": _stamp(now - ago), "eventType": kind,
             "identityMap": identity, **extra}
            for n, (ago, kind, extra) in enumerate(steps)]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, int(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identity(person: Person, ecid: str, signed_in: bool) -> dict:
    identity = {"ECID": [{"id": ecid, "primary": True, "authenticatedState":
                          "authenticated" if signed_in else "ambiguous"}]}
    if signed_in:
        identity["Email"] = [{"id": person.email}]
    return identity


def _session(rng: random.Random, person: Person, at: datetime, now: datetime, key: str
             ) -> Iterator[dict]:
    ecid = rng.choice(person.ecids)
    signed_in = rng.random() < 0.55
    identity = _identity(person, ecid, signed_in)
    moment = at
    step = 0

    def event(kind: str, extra: dict | None = None) -> dict:
        nonlocal step
        step += 1
        record = {"_id": f"web-{key}-{step}", "timestamp": _stamp(moment), "eventType": kind,
                  "identityMap": identity}
        record.update(extra or {})
        return record

    def advance() -> bool:
        nonlocal moment
        moment = moment + timedelta(seconds=rng.randint(15, 240))
        return moment < now

    landing = "home" if rng.random() < 0.55 else rng.choice(PAGES[1:])
    yield event("web.webpagedetails.pageViews", _page(landing))
    viewed: list = []
    for _ in range(rng.randint(0, 4)):
        if not advance():
            return
        product = rng.choice(PRODUCTS)
        viewed.append(product)
        yield event("commerce.productViews", {"productListItems": [_item(product)]})
    if not viewed or rng.random() > 0.35 + person.buyer:
        return
    cart = [p for p in viewed if rng.random() < 0.6] or viewed[:1]
    for product in cart:
        if not advance():
            return
        yield event("commerce.productListAdds", {"productListItems": [_item(product)]})
    if not advance():
        return
    if rng.random() < person.buyer * 2.2:
        total = round(sum(p[2] for p in cart), 2)
        yield event("commerce.checkouts", {
            "productListItems": [_item(p) for p in cart],
            "commerce": {"order": {"priceTotal": total, "currencyCode": "USD",
                                   "purchaseID": f"ORD-{key}"},
                         "checkouts": {"value": 1}}})
    elif rng.random() < 0.5:
        yield event("commerce.abandons", {"productListItems": [_item(p) for p in cart],
                                          "commerce": {"abandons": {"value": 1}}})
    else:
        yield event("commerce.productListRemovals",
                    {"productListItems": [_item(cart[0])]})


def _page(name: str) -> dict:
    is_home = name == "home"
    details = {"name": name, "URL": f"https://shop.example.com/{'' if is_home else name}",
               "isHomePage": is_home}
    return {"web": {"webPageDetails": details},
            "_experience": {"analytics": {"endUser": {"firstWeb": {
                "webPageDetails": {"isHomePage": is_home}}}}}}


def _item(product: tuple) -> dict:
    sku, name, price = product
    return {"SKU": sku, "name": name, "priceTotal": price, "quantity": 1}


def _email_event(person: Person, kind: str, at: datetime, key: str, campaign: int) -> dict:
    return {"_id": f"email-{key}", "timestamp": _stamp(at), "eventType": kind,
            "identityMap": {"Email": [{"id": person.email, "primary": True}]},
            "directMarketing": {"campaign": {"name": f"Campaign {campaign + 1}"}}}
