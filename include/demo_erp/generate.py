"""A seeded order-to-cash world with a known truth, written as a demo ERP database plus file extracts.

Real ERPs tell which orders were held, never how likely a hold was. This world knows: every hold is
sampled from a recorded probability, so the rest of holdcast can be measured against an oracle. The
world is generated from ``WorldSpec.seed`` alone; every timestamp is UTC and every fact in the ERP is
dated before ``as_of``. The window is the ``days`` days before ``as_of``; times below are relative to it.

Customers
    Id ``C000123``, an ordinary company name, a country (about 1.5% in risky ones), industry,
    segment (SMB, MIDMARKET, ENTERPRISE) with a size band, payment terms (14/30/45/60 days), a currency,
    a usual payment method and a hidden sloppiness (how often its orders miss data). 88% were customers
    before the window, 12% join during it. About 1% carry a near miss of a name on the sanctions sample
    (typo, two words swapped, another legal suffix) and about 0.2% a listed name exactly; only the exact
    ones are true matches (``World.customer_truth``).
Hidden risk
    Each customer has a latent risk z: N(0, 1) at the start, then a mean-reverting daily random walk with
    rare upward shocks. It is never written to the ERP. It drives payment lateness, failed payments,
    disputes and defaults, is seen noisily by internal credit reviews and the bureau, and adds a little
    to every hold probability.
Credit profiles and bureau
    A credit review at joining (or shortly before the window) and then every 90 +/- 15 days sets the
    credit limit from the customer's expected volume, terms and risk; internal score 0-100 and risk class
    A-E follow from z at review. The bureau reports monthly: score 300-850, rating A-E, days beyond terms,
    derogatory flags, from z three weeks earlier plus noise.
Orders and lines
    Poisson arrivals per customer (rate by segment, mostly on weekdays, business hours). 1-10 lines of
    products ``P0001``.. drawn by popularity; quantity by product and customer size; unit price is the
    list price less the segment discount, except for rare mismatches (more than 30% below list, or above
    list). PO number and ship-to fields are sometimes missing; some orders ship abroad. Orders created in
    the last ``open_days`` are ``open``: they carry truth probabilities, but no holds and no invoices yet
    (their sampled holds are kept in ``World.future_holds``). An order whose hold ends in a rejection is
    ``cancelled``; every other order is ``closed``.
Inventory
    A weekly (Monday 00:00) availability snapshot per product; products fall into stock-outs and recover.
Hold probabilities
    For an order created at t, per reason, logit = base + rule terms on facts known before t + hidden
    risk term + N(0, 0.3) noise, and p = 1 / (1 + exp(-logit)). The rule facts (``World.rule_facts``)
    can all be recomputed from the ERP tables and the extracts:

    - credit: utilisation = exposure / credit limit of the latest review before t, where exposure is the
      amount of the customer's orders created before t that were neither paid (invoice cleared) nor
      cancelled before t, plus this order; invoices overdue and 30+ days overdue at t; risk class D or E.
    - incomplete_info: PO number missing (weighs more for MIDMARKET and ENTERPRISE, which require one),
      ship-to street, postcode or city missing, a line priced outside tolerance.
    - compliance: sanctions screening score of the customer's name (token-sort ratio against the list)
      and a risky customer or ship-to country; shipping abroad a little.
    - payment: payment method (card, direct debit) and failed or declined payments in the 90 days before t.
    - inventory: lines whose quantity exceeds the latest weekly availability before t.
    - manual_review: order value more than four times the mean of the customer's earlier orders (at least
      three of them), and customers who joined less than 90 days before t.

    ``p_any = 1 - prod(1 - p_reason)``.
Holds
    Each reason is held when a uniform draw falls below its probability, so an order can carry several
    holds. A hold is placed within hours (inventory and manual review: within days) of creation and lasts
    a reason-specific log-normal time. It is released by a person (``manual``, by a team user such as
    ``CR03``), by the system when the condition cleared (``auto``, by ``SYSTEM``), or ``rejected``, which
    cancels the order (at least a day after creation) and ends its other holds at that moment.
Cash
    An order ships one to five days after creation, and not before its last hold is released; the
    invoice follows within hours and falls due after the customer's terms. Cards are charged at
    invoicing, direct debits collected at the due date, invoices paid by transfer around the due date,
    later for riskier customers. Charges and debits fail more often for riskier customers and are retried
    (failed or declined payments); disputes (more often on mispriced orders) hold payment until they
    close, and a few invoices are never paid. An invoice stops counting as exposure when it clears.
Collections and contacts
    Invoices more than five days overdue get a collection step every two weeks while unpaid; a third of
    the steps bring a promise to pay within a week; if the money has not come by then, a broken promise
    is recorded the day after.
    Customers also get ordinary contacts about monthly.

The ERP begins with the window: for customers who joined earlier it holds no older orders or open
items, so exposure and order history build up over the first months.

The simulation walks the window day by day because today's holds delay shipments, and so the payments
that change the exposure seen by later orders; within a day all work is vectorised over the day's orders.
Every consequence of an order lands at least a day after it was created, which is what makes one day a
safe step. ``requested_date`` and ``due_at`` are promises about the future and may lie after ``as_of``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from include.canonical import HOLD_REASONS, TABLES, coerce
from include.demo_erp import names, sanctions
from include.sources.sdn import read_sdn as read_sanctions_entries

logger = logging.getLogger(__name__)

DAY = 86_400
HOUR = 3_600
NEVER = np.int64(2**62)
"""Time of something that does not happen; far beyond any window, and safe to add days to."""
DAYS_PER_MONTH = 30.44

ERP_TABLES = (
    "customers", "credit_profiles", "orders", "order_lines", "invoices",
    "payments", "disputes", "holds", "inventory",
)  # fmt: skip
FILE_TABLES = {"bureau_reports": "bureau/bureau_reports.csv", "interactions": "crm/interactions.csv"}
SDN_FILE = "sanctions/sdn.csv"
TRUTH_TABLE = "truth_order_hold_probabilities"
TRUTH_CUSTOMERS_TABLE = "truth_customers"
TRUTH_FUTURE_HOLDS_TABLE = "truth_open_order_holds"
TRUTH_COLUMNS = ("order_id", "p_any", *(f"p_{r}" for r in HOLD_REASONS))

SEGMENTS = ("SMB", "MIDMARKET", "ENTERPRISE")
PAYMENT_METHODS = ("invoice", "card", "direct_debit")
PAYMENT_CHANNEL = {"invoice": "bank_transfer", "card": "card", "direct_debit": "direct_debit"}
RISKY_COUNTRIES = ("RU", "BY", "IR", "VE", "MM")
COUNTRY_WEIGHTS = {
    "DE": 0.22, "FR": 0.10, "NL": 0.07, "BE": 0.03, "AT": 0.03, "CH": 0.03, "GB": 0.11, "IE": 0.02,
    "US": 0.14, "IT": 0.07, "ES": 0.06, "PL": 0.05, "SE": 0.03, "DK": 0.025, "AE": 0.02,
    "RU": 0.006, "BY": 0.002, "IR": 0.002, "VE": 0.003, "MM": 0.002,
}  # fmt: skip
CURRENCY = {"CH": "CHF", "GB": "GBP", "US": "USD", "PL": "PLN", "SE": "SEK", "DK": "DKK", "AE": "USD"}
EURO_COUNTRIES = ("DE", "FR", "NL", "BE", "AT", "IE", "IT", "ES")
FX_PER_EUR = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CHF": 0.95, "SEK": 11.2, "PLN": 4.3, "DKK": 7.46}
INDUSTRIES = (
    "manufacturing", "retail", "wholesale", "construction", "healthcare",
    "automotive", "food_beverage", "logistics", "energy", "technology",
)  # fmt: skip
CATEGORIES = (
    "fasteners", "hydraulics", "electrical", "safety", "packaging", "tools", "bearings", "lubricants",
)  # fmt: skip
N_PRODUCTS = 400
NEW_CUSTOMER_SHARE = 0.12
NEW_CUSTOMER_DAYS = 90
BUREAU = "CREDITLINE"

# Per segment (SMB, MIDMARKET, ENTERPRISE).
SEGMENT_SHARE = (0.55, 0.33, 0.12)
ORDER_RATE = (0.7, 1.1, 1.9)
QUANTITY_SCALE = (1.0, 2.5, 6.0)
TERMS_DAYS = (14, 30, 45, 60)
TERMS_SHARE = ((0.35, 0.5, 0.1, 0.05), (0.1, 0.5, 0.3, 0.1), (0.02, 0.38, 0.35, 0.25))
METHOD_SHARE = ((0.45, 0.35, 0.20), (0.70, 0.08, 0.22), (0.88, 0.02, 0.10))
DISCOUNTS = ((0.0, 0.05), (0.05, 0.10), (0.10, 0.15))
SIZE_BANDS = (("1-49", "50-249", 0.7), ("50-249", "250-999", 0.6), ("250-999", "1000+", 0.3))

# Hold behaviour per reason, in HOLD_REASONS order: median duration (days) and its log spread, mean
# placement delay after creation (days), share released automatically, team prefix of the releasing user.
HOLD_MEDIAN_DAYS = (1.2, 0.8, 2.5, 1.5, 4.0, 0.6)
HOLD_SPREAD = (1.0, 0.9, 0.8, 0.9, 0.7, 0.9)
HOLD_PLACEMENT_DAYS = (0.02, 0.02, 0.02, 0.02, 0.25, 0.5)
HOLD_AUTO_SHARE = (0.25, 0.3, 0.0, 0.7, 0.85, 0.0)
HOLD_TEAM = ("CR", "OD", "CO", "AR", "OD", "OD")
TEAM_SIZE = 6
NOISE_SD = 0.3

# Exposure drops when an order clears or is cancelled; the other channels count invoices and failures.
CH_EXPOSURE_DROP, CH_OVERDUE, CH_OVERDUE_30, CH_FAILED_90 = range(4)
N_CHANNELS = 4
_STREAMS = (
    "customers", "risk", "catalog", "inventory", "profiles", "bureau",
    "orders", "lines", "holds", "cash", "crm",
)  # fmt: skip
_R = {reason: i for i, reason in enumerate(HOLD_REASONS)}


class WorldSpecError(ValueError):
    """A world specification that cannot produce a world."""


class SimulationError(RuntimeError):
    """The simulation broke one of its own invariants: a bug in the generator, not in the input."""


@dataclass(frozen=True)
class WorldSpec:
    """How big the world is, how long it runs, and the seed it is generated from.

    Attributes:
        n_customers: customers at ``as_of``, including those who joined during the window.
        days: length of the window ending at ``as_of``.
        orders_per_customer_per_month: mean order rate of a customer (segments differ around it).
        open_days: orders created this many days before ``as_of`` or later are still open.
        seed: everything is drawn from this.
        as_of: the moment the ERP is read; a timezone-aware time.
    """

    n_customers: int = 600
    days: int = 540
    orders_per_customer_per_month: float = 2.5
    open_days: int = 7
    seed: int = 7
    as_of: datetime = datetime(2025, 6, 30, tzinfo=UTC)

    def __post_init__(self) -> None:
        if self.n_customers < 10:
            raise WorldSpecError(f"n_customers={self.n_customers}: expected at least 10")
        if self.days < 60:
            raise WorldSpecError(f"days={self.days}: expected at least 60 days of history")
        if not 0 <= self.open_days < self.days // 2:
            raise WorldSpecError(f"open_days={self.open_days}: expected 0 <= open_days < days / 2")
        if self.orders_per_customer_per_month <= 0:
            rate = self.orders_per_customer_per_month
            raise WorldSpecError(f"orders_per_customer_per_month={rate}: expected more than 0")
        if self.as_of.tzinfo is None:
            raise WorldSpecError(f"as_of={self.as_of.isoformat()}: expected a timezone-aware time")
        object.__setattr__(self, "as_of", self.as_of.astimezone(UTC))

    @classmethod
    def for_orders(cls, n_orders: int, **kwargs) -> WorldSpec:
        """A spec whose customer count gives about ``n_orders`` orders; other fields as given or default.

        Args:
            n_orders: wanted number of orders (the Poisson draw lands within a few percent); a world has
                at least 10 customers, so very small counts come out larger.
            **kwargs: any other :class:`WorldSpec` field.
        """
        probe = cls(**kwargs)
        new_active_days = (probe.days + 14) / 2 - 1
        active_days = (1 - NEW_CUSTOMER_SHARE) * probe.days + NEW_CUSTOMER_SHARE * new_active_days
        per_customer = probe.orders_per_customer_per_month / DAYS_PER_MONTH * active_days
        return replace(probe, n_customers=max(10, round(n_orders / per_customer)))


@dataclass
class World:
    """A generated world: what the ERP and the file drops hold, and the truth they do not.

    Attributes:
        spec: what it was generated from.
        tables: every canonical table (names and columns of :mod:`include.canonical`, coerced) as the
            sources show it at ``as_of``.
        truth: per order (open ones included), the probabilities the holds were sampled from.
        customer_truth: per customer, the hidden risk and whether its name truly is a listed party.
        future_holds: holds sampled for the open orders, placed after ``as_of`` (canonical holds columns).
        rule_facts: per order, the facts the hold rules used, as the ERP saw them at creation.
        sdn: the sanctions list extract in the published layout (:data:`sanctions.SDN_COLUMNS`).
    """

    spec: WorldSpec
    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    customer_truth: pd.DataFrame
    future_holds: pd.DataFrame
    rule_facts: pd.DataFrame
    sdn: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class _Clock:
    """Times inside the generator are whole seconds since the window start, as int64."""

    start: pd.Timestamp
    days: int

    @property
    def horizon(self) -> int:
        return self.days * DAY

    def stamps(self, seconds: np.ndarray, valid: np.ndarray | None = None) -> pd.Series:
        """UTC timestamps of the given times; ``NEVER`` and rows not ``valid`` become NaT."""
        seconds = np.asarray(seconds, dtype=np.int64)
        ok = seconds < NEVER if valid is None else valid & (seconds < NEVER)
        micros = np.where(ok, seconds, 0) * 1_000_000 + self.start.value // 1_000
        values = micros.astype("datetime64[us]")
        values[~ok] = np.datetime64("NaT")
        return pd.Series(values).dt.tz_localize("UTC")

    def day_of(self, seconds: np.ndarray) -> np.ndarray:
        """Day index of each time, clipped into the window (risk paths exist only there)."""
        return np.clip(np.minimum(seconds, self.horizon) // DAY, 0, self.days - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _step(x: np.ndarray, at: float, width: float) -> np.ndarray:
    """A soft threshold: 0 well below ``at``, 1 well above, like an ERP rule with a little tolerance."""
    return _sigmoid((x - at) / width)


def _days(values: np.ndarray) -> np.ndarray:
    """Durations in days (floats) as whole seconds."""
    return np.round(np.asarray(values) * DAY).astype(np.int64)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return (prefix + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)).to_numpy(dtype=object)


# ---------------------------------------------------------------------------------------------------------
# Master data


def _customers(spec: WorldSpec, rng: np.random.Generator, sdn: pd.DataFrame) -> pd.DataFrame:
    n = spec.n_customers
    seg = rng.choice(3, size=n, p=SEGMENT_SHARE)
    countries = np.asarray(list(COUNTRY_WEIGHTS), dtype=object)
    weights = np.asarray(list(COUNTRY_WEIGHTS.values()))
    country = countries[rng.choice(len(countries), size=n, p=weights / weights.sum())]
    currency = np.where(
        np.isin(country, EURO_COUNTRIES), "EUR", pd.Series(country).map(CURRENCY).fillna("USD").to_numpy()
    )
    band_low = np.asarray([b[0] for b in SIZE_BANDS], dtype=object)[seg]
    band_high = np.asarray([b[1] for b in SIZE_BANDS], dtype=object)[seg]
    size_band = np.where(rng.random(n) < np.asarray([b[2] for b in SIZE_BANDS])[seg], band_low, band_high)

    terms = np.asarray(TERMS_DAYS)[_choice_rows(rng, np.asarray(TERMS_SHARE)[seg])]
    method = _choice_rows(rng, np.asarray(METHOD_SHARE)[seg])
    discount = np.asarray(DISCOUNTS)[seg, rng.integers(0, 2, n)]
    rate = np.asarray(ORDER_RATE)[seg] * rng.lognormal(0.0, 0.35, n)
    rate = rate / rate.mean() * spec.orders_per_customer_per_month / DAYS_PER_MONTH
    qty_scale = np.asarray(QUANTITY_SCALE)[seg] * rng.lognormal(0.0, 0.35, n)

    new = rng.random(n) < NEW_CUSTOMER_SHARE
    join_day = rng.integers(0, spec.days - 14, n)
    since = np.where(
        new,
        join_day * DAY + rng.integers(8 * HOUR, 17 * HOUR, n),
        -_days(rng.uniform(60, 3650, n)),
    )

    name = names.company_names(rng, country)
    kind = np.full(n, "none", dtype=object)
    ent_num = np.full(n, None, dtype=object)
    entities = sdn[sdn["SDN_Type"].isna()]
    eligible = entities[sanctions.normalise_names(entities["SDN_Name"]).str.count(" ") >= 1]
    n_near, n_exact = max(1, round(0.01 * n)), max(1, round(0.002 * n))
    rows = rng.choice(n, size=n_near + n_exact, replace=False)
    # A world larger than the sample reuses listed names; customers may share a name in real ERPs too.
    reuse = n_near + n_exact > len(eligible)
    listed = eligible.iloc[rng.choice(len(eligible), size=n_near + n_exact, replace=reuse)]
    near_rows, exact_rows = rows[:n_near], rows[n_near:]
    name[near_rows] = names.near_misses(rng, listed["SDN_Name"].to_numpy()[:n_near])
    name[exact_rows] = listed["SDN_Name"].to_numpy()[n_near:]
    kind[near_rows], kind[exact_rows] = "near_miss", "exact"
    ent_num[rows] = listed["ent_num"].to_numpy()
    score, _ = sanctions.screening_scores(pd.Series(name), sdn["SDN_Name"])

    city, street, postcode = names.addresses(rng, country)
    return pd.DataFrame(
        {
            "customer_id": _ids("C", n, 6),
            "name": name,
            "country": country,
            "industry": np.asarray(INDUSTRIES, dtype=object)[rng.integers(0, len(INDUSTRIES), n)],
            "segment": np.asarray(SEGMENTS, dtype=object)[seg],
            "seg": seg,
            "size_band": size_band,
            "since": since,
            "new": new,
            "payment_terms_days": terms,
            "currency": currency,
            "fx": pd.Series(currency).map(FX_PER_EUR).to_numpy(),
            "method": method,
            "discount": discount,
            "rate": rate,
            "qty_scale": qty_scale,
            "sloppiness": rng.beta(1.3, 7.0, n),
            "city": city,
            "street": street,
            "postcode": postcode,
            "sanctions_kind": kind,
            "sdn_ent_num": ent_num,
            "screening_score": score,
            "z0": rng.normal(0.0, 1.0, n),
        }
    )


def _choice_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category per row, each row with its own probabilities."""
    cumulative = probabilities.cumsum(axis=1)
    return (rng.random((len(probabilities), 1)) * cumulative[:, -1:] > cumulative).sum(axis=1)


def _risk_paths(rng: np.random.Generator, z0: np.ndarray, days: int) -> np.ndarray:
    """Hidden risk per customer and day: z0 plus a mean-reverting walk with rare upward shocks."""
    n = len(z0)
    shocks = (rng.random((days, n)) < 0.0012) * rng.normal(0.9, 0.3, (days, n))
    steps = rng.normal(0.0, 0.05, (days, n)) + shocks
    paths = np.empty((n, days))
    drift = np.zeros(n)
    # A walk over days, each step vectorised over all customers.
    for day in range(days):
        drift = 0.995 * drift + steps[day]
        paths[:, day] = z0 + drift
    return paths


def _catalog(rng: np.random.Generator) -> pd.DataFrame:
    popularity = 1.0 / rng.permutation(np.arange(1, N_PRODUCTS + 1)) ** 0.9
    category = np.asarray(CATEGORIES, dtype=object)[rng.integers(0, len(CATEGORIES), N_PRODUCTS)]
    return pd.DataFrame(
        {
            "product_id": _ids("P", N_PRODUCTS, 4),
            "product_category": category,
            "list_eur": np.maximum(0.5, np.round(rng.lognormal(np.log(35.0), 0.7, N_PRODUCTS), 2)),
            "base_qty": np.ceil(rng.lognormal(np.log(4.0), 0.7, N_PRODUCTS)),
            "weight": popularity / popularity.sum(),
        }
    )


def _inventory(rng: np.random.Generator, clock: _Clock, catalog: pd.DataFrame) -> pd.DataFrame:
    """Weekly availability per product: plenty most weeks, stock-outs that come and go."""
    first_monday = clock.start.normalize() - pd.Timedelta(days=clock.start.weekday())
    offset = int((first_monday - clock.start).total_seconds())
    weeks = np.arange(offset, clock.horizon, 7 * DAY)
    n = len(catalog)
    out_of_stock = np.zeros(n, dtype=bool)
    enter, leave = rng.random((len(weeks), n)), rng.random((len(weeks), n))
    level = np.empty((len(weeks), n))
    normal = 60.0 * rng.lognormal(0.0, 0.35, (len(weeks), n))
    short = rng.uniform(0.0, 4.0, (len(weeks), n))
    for week in range(len(weeks)):
        out_of_stock = np.where(out_of_stock, leave[week] >= 0.45, enter[week] < 0.015)
        level[week] = np.where(out_of_stock, short[week], normal[week])
    available = np.round(level * catalog["base_qty"].to_numpy()[None, :])
    return pd.DataFrame(
        {
            "product": np.tile(np.arange(n), len(weeks)),
            "t": np.repeat(weeks, n),
            "available": available.ravel(),
        }
    )


def _expected_order_amount(cust: pd.DataFrame, catalog: pd.DataFrame) -> np.ndarray:
    """What the credit department expects an order of the customer to be worth, in its currency."""
    line = (catalog["weight"] * catalog["base_qty"] * catalog["list_eur"]).sum() * np.exp(0.5**2 / 2)
    price_factor = (1 - cust["discount"].to_numpy()) * cust["fx"].to_numpy()
    return 2.4 * line * cust["qty_scale"].to_numpy() * price_factor


def _credit_profiles(
    rng: np.random.Generator, clock: _Clock, cust: pd.DataFrame, risk: np.ndarray, catalog: pd.DataFrame
) -> pd.DataFrame:
    n = len(cust)
    first = np.where(cust["new"], cust["since"], -_days(rng.uniform(0, 90, n)))
    most = int(np.ceil((clock.horizon - first.min()) / (75 * DAY))) + 1
    gaps = _days(rng.uniform(75, 105, (n, most)))
    gaps[:, 0] = 0
    at = first[:, None] + gaps.cumsum(axis=1)
    rows, cols = np.nonzero(at < clock.horizon)
    t = at[rows, cols]
    z = risk[rows, clock.day_of(t)]
    score = np.clip(np.round(70.0 - 11.0 * z + rng.normal(0, 5, len(t)), 1), 1, 99)
    # About two months of expected volume beyond the terms: enough for a customer who pays on time.
    days_of_volume = cust["payment_terms_days"].to_numpy() + 20
    volume = cust["rate"].to_numpy() * _expected_order_amount(cust, catalog) * days_of_volume
    limit = 2.2 * volume[rows] * np.exp(-0.35 * z + rng.normal(0, 0.2, len(t)))
    return pd.DataFrame(
        {
            "cust": rows,
            "t": t,
            "credit_limit": np.maximum(1000.0, np.round(limit / 500) * 500),
            "internal_score": score,
            "risk_class": _grade(score, (50, 60, 70, 80)),
        }
    )


def _grade(score: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    """Letter grade A (best) to E of a score, given the lower bounds of D, C, B and A."""
    return np.asarray(list("EDCBA"), dtype=object)[np.searchsorted(bounds, score, side="right")]


def _bureau_reports(
    rng: np.random.Generator, clock: _Clock, cust: pd.DataFrame, risk: np.ndarray
) -> pd.DataFrame:
    # From the month the window starts in, so the first orders already have a report before them.
    first = pd.Timestamp(year=clock.start.year, month=clock.start.month, day=1, tz="UTC")
    months = pd.date_range(first, clock.start + pd.Timedelta(days=clock.days), freq="MS")
    month_t = ((months - clock.start).total_seconds().astype(np.int64) + 4 * HOUR).to_numpy()
    month_t = month_t[month_t < clock.horizon]
    since = cust["since"].to_numpy()
    rows, cols = np.nonzero(month_t[None, :] > since[:, None])
    t = month_t[cols]
    z = risk[rows, clock.day_of(t - 21 * DAY)]
    m = len(t)
    score = np.clip(np.round(650 - 55 * z + rng.normal(0, 30, m)), 300, 850)
    rating = _grade(score, (540, 600, 660, 720))
    return pd.DataFrame(
        {
            "customer_id": cust["customer_id"].to_numpy()[rows],
            "reported_at": clock.stamps(t),
            "bureau": BUREAU,
            "score": score,
            "rating": rating,
            "days_beyond_terms": np.maximum(0.0, np.round(2 + 6 * z + rng.normal(0, 4, m), 1)),
            "derogatory_flags": rng.poisson(np.exp(-2.2 + 1.1 * z)),
        }
    ).sort_values(["reported_at", "customer_id"], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Orders


def _orders(spec: WorldSpec, rng: np.random.Generator, clock: _Clock, cust: pd.DataFrame) -> pd.DataFrame:
    """Order headers: arrival times per customer, then the fields an order desk fills in."""
    weekday = (clock.start.weekday() + np.arange(spec.days)) % 7
    weight = np.select([weekday == 5, weekday == 6], [0.12, 0.05], default=1.0)
    cumulative = np.concatenate([[0.0], weight.cumsum()])
    since = cust["since"].to_numpy()
    first_day = np.where(cust["new"], since // DAY + 1, 0)
    counts = rng.poisson(cust["rate"].to_numpy() * (spec.days - first_day))
    c = np.repeat(np.arange(len(cust)), counts)
    n = len(c)
    # Inverse of the weekday-weighted day distribution over each customer's active span.
    u = cumulative[first_day[c]] + rng.random(n) * (cumulative[-1] - cumulative[first_day[c]])
    day = np.clip(np.searchsorted(cumulative, u, side="right") - 1, first_day[c], spec.days - 1)
    t = day * DAY + (np.clip(rng.normal(11.5, 2.6, n), 6, 21) * HOUR).astype(np.int64)
    frame = pd.DataFrame({"cust": c, "t": t}).sort_values(["cust", "t"], kind="stable")
    # Two orders of one customer in the same second would make "before" ambiguous: move the later one on.
    frame["t"] += frame.groupby(["cust", "t"]).cumcount().to_numpy()
    frame = frame.sort_values(["t", "cust"], kind="stable", ignore_index=True)
    c, t = frame["cust"].to_numpy(), frame["t"].to_numpy()

    primary = cust["method"].to_numpy()[c]
    method = np.where(rng.random(n) < 0.85, primary, rng.integers(0, 3, n))
    sloppy = cust["sloppiness"].to_numpy()[c]
    country = cust["country"].to_numpy()[c]
    abroad = rng.random(n) < 0.03
    abroad_countries = np.asarray([*COUNTRY_WEIGHTS], dtype=object)
    abroad_p = np.asarray([0.016 if k in RISKY_COUNTRIES else 1.0 for k in abroad_countries])
    ship_country = np.where(
        abroad, abroad_countries[rng.choice(len(abroad_countries), n, p=abroad_p / abroad_p.sum())], country
    )
    abroad &= ship_country != country
    other_city, other_street, other_postcode = names.addresses(rng, ship_country)
    city = np.where(abroad, other_city, cust["city"].to_numpy()[c])
    street = np.where(abroad, other_street, cust["street"].to_numpy()[c])
    postcode = np.where(abroad, other_postcode, cust["postcode"].to_numpy()[c])
    po = ("45" + pd.Series(rng.integers(0, 10**8, n)).astype(str).str.zfill(8)).to_numpy(dtype=object)

    def missing(base: float, per_sloppiness: float) -> np.ndarray:
        return rng.random(n) < base + per_sloppiness * sloppy

    return pd.DataFrame(
        {
            "order_id": _ids("SO", n, 8),
            "cust": c,
            "t": t,
            "requested": (t // DAY + rng.integers(3, 22, n)) * DAY,
            "ship_to_country": ship_country,
            "ship_to_city": np.where(missing(0.003, 0.0), None, city),
            "ship_to_street": np.where(missing(0.008, 0.05), None, street),
            "ship_to_postcode": np.where(missing(0.008, 0.04), None, postcode),
            "po_number": np.where(missing(0.015, 0.12), None, po),
            "method": method,
            "abroad": abroad,
            "open": t >= clock.horizon - spec.open_days * DAY,
        }
    )


def _order_lines(
    rng: np.random.Generator, orders: pd.DataFrame, cust: pd.DataFrame, catalog: pd.DataFrame
) -> pd.DataFrame:
    n_lines = np.minimum(1 + rng.poisson(1.4, len(orders)), 10)
    o = np.repeat(np.arange(len(orders)), n_lines)
    c = orders["cust"].to_numpy()[o]
    m = len(o)
    product = rng.choice(len(catalog), size=m, p=catalog["weight"].to_numpy())
    typical = catalog["base_qty"].to_numpy()[product] * cust["qty_scale"].to_numpy()[c]
    qty = np.maximum(1.0, np.round(typical * rng.lognormal(0, 0.5, m)))
    list_price = np.round(catalog["list_eur"].to_numpy()[product] * cust["fx"].to_numpy()[c], 2)
    unit = np.round(list_price * (1 - cust["discount"].to_numpy()[c]), 2)
    mispriced = rng.random(m) < 0.006 + 0.03 * cust["sloppiness"].to_numpy()[c]
    wrong = np.where(rng.random(m) < 0.5, rng.uniform(0.45, 0.65, m), rng.uniform(1.08, 1.3, m))
    unit = np.where(mispriced, np.round(list_price * wrong, 2), unit)
    line_no = (pd.Series(o).groupby(o).cumcount().to_numpy() + 1) * 10
    return pd.DataFrame(
        {
            "o": o,
            "order_id": orders["order_id"].to_numpy()[o],
            "line_no": line_no,
            "product": product,
            "product_id": catalog["product_id"].to_numpy()[product],
            "product_category": catalog["product_category"].to_numpy()[product],
            "quantity": qty,
            "unit_price": unit,
            "list_price": list_price,
            "value": np.round(qty * unit, 2),
        }
    )


def _static_facts(
    orders: pd.DataFrame,
    lines: pd.DataFrame,
    cust: pd.DataFrame,
    profiles: pd.DataFrame,
    inventory: pd.DataFrame,
) -> pd.DataFrame:
    """The rule facts that do not depend on earlier holds: they can be computed for all orders at once."""
    c = orders["cust"].to_numpy()
    t = orders["t"].to_numpy()
    amount = np.round(np.bincount(lines["o"], weights=lines["value"], minlength=len(orders)), 2)
    by_customer = pd.DataFrame({"c": c, "amount": amount}).groupby("c")
    prior = by_customer.cumcount().to_numpy()
    created_before = by_customer["amount"].cumsum().to_numpy() - amount
    size_ratio = np.where(prior > 0, amount / np.maximum(created_before / np.maximum(prior, 1), 0.01), np.nan)

    profile = pd.merge_asof(
        pd.DataFrame({"t": t, "cust": c, "row": np.arange(len(t))}),
        profiles.sort_values("t"),
        on="t",
        by="cust",
        allow_exact_matches=False,
    ).sort_values("row")
    line_times = pd.DataFrame({"t": t[lines["o"]], "product": lines["product"], "row": np.arange(len(lines))})
    stock = pd.merge_asof(
        line_times.sort_values("t"),
        inventory.sort_values("t"),
        on="t",
        by="product",
        allow_exact_matches=False,
    ).sort_values("row")
    short = (lines["quantity"].to_numpy() > stock["available"].to_numpy()).astype(np.int64)
    ratio = lines["unit_price"].to_numpy() / lines["list_price"].to_numpy()
    mispriced = ((ratio < 0.7) | (ratio > 1.0 + 1e-9)).astype(np.int64)

    ship_to = orders[["ship_to_city", "ship_to_street", "ship_to_postcode"]]
    risky = np.isin(cust["country"].to_numpy()[c], RISKY_COUNTRIES)
    risky |= np.isin(orders["ship_to_country"], RISKY_COUNTRIES)
    return pd.DataFrame(
        {
            "amount": amount,
            "created_before": created_before,
            "prior_orders": prior,
            "size_ratio": size_ratio,
            "new_customer": (t - cust["since"].to_numpy()[c]) < NEW_CUSTOMER_DAYS * DAY,
            "credit_limit": profile["credit_limit"].to_numpy(),
            "internal_score": profile["internal_score"].to_numpy(),
            "risk_class": profile["risk_class"].to_numpy(),
            "short_lines": np.bincount(lines["o"], weights=short, minlength=len(orders)).astype(np.int64),
            "price_mismatch": np.bincount(lines["o"], weights=mispriced, minlength=len(orders)) > 0,
            "missing_po": orders["po_number"].isna().to_numpy(),
            "po_required": cust["seg"].to_numpy()[c] > 0,
            "missing_ship_to": ship_to.isna().any(axis=1).to_numpy(),
            "screening_score": cust["screening_score"].to_numpy()[c],
            "risky_country": risky,
            "ship_abroad": orders["abroad"].to_numpy(),
            "payment_method": orders["method"].to_numpy(),
        }
    )


def _static_logits(facts: pd.DataFrame, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Per order and reason, the part of the logit fixed at creation: rules on static facts, risk, noise.

    The credit and payment rules on receivables and failed payments are added day by day in the
    simulation, because those facts depend on how earlier orders went.
    """
    f = facts
    po_missing = f["missing_po"].to_numpy()
    required = f["po_required"].to_numpy()
    method = f["payment_method"].to_numpy()
    short = f["short_lines"].to_numpy()
    known_history = f["prior_orders"].to_numpy() >= 3
    large = _step(np.log(f["size_ratio"].fillna(1.0).to_numpy()), np.log(4.0), 0.1) * known_history
    logits = np.column_stack(
        [
            -4.7 + 0.9 * np.isin(f["risk_class"], ("D", "E")) + 0.35 * z,
            -4.6
            + 4.2 * (po_missing & required)
            + 1.8 * (po_missing & ~required)
            + 4.0 * f["missing_ship_to"].to_numpy()
            + 3.6 * f["price_mismatch"].to_numpy()
            + 0.15 * z,
            -7.2
            + 9.0 * _step(f["screening_score"].to_numpy(), 90.0, 2.0)
            + 3.0 * f["risky_country"].to_numpy()
            + 0.8 * f["ship_abroad"].to_numpy(),
            -5.8 + 1.6 * (method == 1) + 1.2 * (method == 2) + 0.35 * z,
            -5.8 + 6.5 * (short > 0) + 0.7 * np.clip(short - 1, 0, 2),
            -4.6 + 4.2 * large + 3.0 * f["new_customer"].to_numpy() + 0.2 * z,
        ]
    )
    return logits + noise


def _dynamic_logits(
    state: np.ndarray, amount: np.ndarray, created_before: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Credit and payment terms from the receivables state at creation; returns (terms, exposure)."""
    exposure = created_before - state[CH_EXPOSURE_DROP] + amount
    utilisation = exposure / limit
    credit = (
        4.2 * _step(utilisation, 1.0, 0.03)
        + 1.3 * np.minimum(state[CH_OVERDUE_30], 3)
        + 0.4 * np.minimum(state[CH_OVERDUE], 4)
    )
    payment = 1.1 * np.minimum(state[CH_FAILED_90], 3)
    terms = np.zeros((len(amount), len(HOLD_REASONS)))
    terms[:, _R["credit"]] = credit
    terms[:, _R["payment"]] = payment
    return terms, exposure


# ---------------------------------------------------------------------------------------------------------
# The day-by-day simulation


class _EventBook:
    """Future changes of per-customer counters, filed by the day they happen.

    ``sums_before`` answers, for orders of one day, the sum of that day's changes of each counter that
    happened strictly before each order: the part of the counters that moved since midnight.
    """

    def __init__(self, clock: _Clock):
        self._horizon = clock.horizon
        self._days: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(clock.days)]
        self._taken = -1

    def add(self, cust: np.ndarray, t: np.ndarray, channel: np.ndarray, delta: np.ndarray) -> None:
        keep = t < self._horizon
        if not keep.any():
            return
        cust, t, channel, delta = cust[keep], t[keep], channel[keep], delta[keep]
        day = t // DAY
        if day.min() <= self._taken:
            # Filed into a day already simulated, the change would be lost without a trace.
            raise SimulationError(
                f"a counter change at day {day.min()} arrived after day {self._taken} was simulated; "
                "every consequence of an order must come at least a day after it"
            )
        order = np.argsort(day, kind="stable")
        day, cust, t, channel, delta = day[order], cust[order], t[order], channel[order], delta[order]
        starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
        ends = np.r_[starts[1:], len(day)]
        for start, end in zip(starts, ends, strict=True):
            part = slice(start, end)
            self._days[day[start]].append((cust[part], t[part], channel[part], delta[part]))

    def take(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        parts = self._days[day]
        self._days[day] = []
        self._taken = day
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty, np.empty(0)
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def sums_before(self, events: tuple[np.ndarray, ...], cust: np.ndarray, t: np.ndarray) -> np.ndarray:
        e_cust, e_t, e_channel, e_delta = events
        if not len(e_t):
            return np.zeros((N_CHANNELS, len(cust)))
        group = e_cust * N_CHANNELS + e_channel
        key = group * self._horizon + e_t
        order = np.argsort(key, kind="stable")
        key = key[order]
        running = np.concatenate([[0.0], np.cumsum(e_delta[order])])
        wanted = (cust[None, :] * N_CHANNELS + np.arange(N_CHANNELS)[:, None]) * self._horizon
        low = np.searchsorted(key, wanted, side="left")
        high = np.searchsorted(key, wanted + t[None, :], side="left")
        return running[high] - running[low]


@dataclass
class _Draws:
    """Every random number the simulation uses, drawn up front so a run depends on the seed alone."""

    hold_u: np.ndarray
    placement: np.ndarray
    duration: np.ndarray
    reject_u: np.ndarray
    auto_u: np.ndarray
    user: np.ndarray
    ship_delay: np.ndarray
    invoice_lag: np.ndarray
    fail_u: np.ndarray
    lateness: np.ndarray
    dispute_u: np.ndarray
    dispute_open: np.ndarray
    dispute_length: np.ndarray
    dispute_share: np.ndarray
    deduct_u: np.ndarray
    default_u: np.ndarray

    @classmethod
    def draw(cls, holds: np.random.Generator, cash: np.random.Generator, n: int) -> _Draws:
        reasons = len(HOLD_REASONS)
        median = np.log(np.asarray(HOLD_MEDIAN_DAYS))[None, :]
        spread = np.asarray(HOLD_SPREAD)[None, :]
        return cls(
            hold_u=holds.random((n, reasons)),
            placement=_days(np.minimum(holds.exponential(HOLD_PLACEMENT_DAYS, (n, reasons)), 2.5)),
            duration=_days(np.exp(median + spread * holds.normal(0, 1, (n, reasons))) + 0.01),
            reject_u=holds.random((n, reasons)),
            auto_u=holds.random((n, reasons)),
            user=holds.integers(1, TEAM_SIZE + 1, (n, reasons)),
            ship_delay=_days(cash.uniform(1.0, 5.0, n)),
            invoice_lag=_days(cash.uniform(0.05, 0.6, n)),
            fail_u=cash.random((n, 3)),
            lateness=cash.gamma(2.0, 1.0, n),
            dispute_u=cash.random(n),
            dispute_open=_days(cash.uniform(2.0, 20.0, n)),
            dispute_length=_days(cash.gamma(2.0, 8.0, n)),
            dispute_share=cash.uniform(0.05, 0.6, n),
            deduct_u=cash.random(n),
            default_u=cash.random(n),
        )


class _Simulation:
    """Holds and cash of all orders, day by day; fills per-order arrays the tables are built from."""

    def __init__(
        self,
        clock: _Clock,
        orders: pd.DataFrame,
        facts: pd.DataFrame,
        cust: pd.DataFrame,
        risk: np.ndarray,
        draws: _Draws,
        static_logits: np.ndarray,
        reject_p: np.ndarray,
    ):
        self.clock, self.risk, self.d, self.static = clock, risk, draws, static_logits
        self.reject_p = reject_p
        self.cust = orders["cust"].to_numpy()
        self.t = orders["t"].to_numpy()
        self.open = orders["open"].to_numpy()
        self.method = orders["method"].to_numpy()
        self.amount = facts["amount"].to_numpy()
        self.created_before = facts["created_before"].to_numpy()
        self.limit = facts["credit_limit"].to_numpy()
        self.mispriced = facts["price_mismatch"].to_numpy()
        self.terms = cust["payment_terms_days"].to_numpy()[self.cust] * DAY
        n, reasons = len(orders), len(HOLD_REASONS)
        self.p = np.zeros((n, reasons))
        self.held = np.zeros((n, reasons), dtype=bool)
        self.state = np.zeros((n, N_CHANNELS))
        self.exposure = np.zeros(n)
        self.cancel, self.issued, self.due, self.clear = (np.full(n, NEVER) for _ in range(4))
        self.first_attempt, self.retry_gap = np.full(n, NEVER), np.zeros(n, dtype=np.int64)
        self.failures = np.zeros(n, dtype=np.int64)
        self.disputed = np.zeros(n, dtype=bool)
        self.paid = np.full(n, np.nan)

    def run(self, n_customers: int) -> None:
        book = _EventBook(self.clock)
        level = np.zeros((N_CHANNELS, n_customers))
        bounds = np.searchsorted(self.t // DAY, np.arange(self.clock.days + 1))
        for day in range(self.clock.days):
            events = book.take(day)
            block = np.arange(bounds[day], bounds[day + 1])
            if len(block):
                c = self.cust[block]
                state = level[:, c] + book.sums_before(events, c, self.t[block])
                dynamic, exposure = _dynamic_logits(
                    state, self.amount[block], self.created_before[block], self.limit[block]
                )
                self.p[block] = _sigmoid(self.static[block] + dynamic)
                self.held[block] = self.d.hold_u[block] < self.p[block]
                self.state[block], self.exposure[block] = state.T, exposure
                # Open orders have not met the ERP's checks yet: nothing of them may move a counter.
                decided = block[~self.open[block]]
                if len(decided):
                    book.add(*self._settle(decided))
            if len(events[0]):
                np.add.at(level, (events[2], events[0]), events[3])

    def hold_times(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Placement, release, rejection flag per reason, and the cancellation time per order."""
        t = self.t[rows, None]
        placed = t + self.d.placement[rows]
        rejected = self.held[rows] & (self.d.reject_u[rows] < self.reject_p[rows])
        # A rejection cancels the order; deciding that takes at least a day.
        released = placed + self.d.duration[rows]
        released = np.where(rejected, np.maximum(released, t + DAY), released)
        cancel = np.where(rejected, released, NEVER).min(axis=1)
        return placed, released, rejected, cancel

    def _settle(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Shipment, invoice and payments of decided orders; returns the counter changes they cause."""
        _, released, _, cancel = self.hold_times(rows)
        held = self.held[rows]
        cancelled = cancel < NEVER
        last_release = np.where(held, released, self.t[rows, None]).max(axis=1)
        ship = np.maximum(self.t[rows] + self.d.ship_delay[rows], last_release + 6 * HOUR)
        live = rows[~cancelled]
        self.cancel[rows] = cancel
        if len(live):
            self._cash(live, ship[~cancelled])

        c, amount = self.cust[rows], self.amount[rows]
        lc, la = self.cust[live], self.amount[live]
        due, clear = self.due[live], self.clear[live]
        late, late30 = clear > due, clear > due + 30 * DAY
        paid = clear < NEVER
        parts = [
            (c[cancelled], cancel[cancelled], CH_EXPOSURE_DROP, amount[cancelled]),
            (lc[paid], clear[paid], CH_EXPOSURE_DROP, la[paid]),
            (lc[late], due[late], CH_OVERDUE, 1.0),
            (lc[late & paid], clear[late & paid], CH_OVERDUE, -1.0),
            (lc[late30], due[late30] + 30 * DAY, CH_OVERDUE_30, 1.0),
            (lc[late30 & paid], clear[late30 & paid], CH_OVERDUE_30, -1.0),
        ]
        for attempt in range(3):
            failed = attempt < self.failures[live]
            at = self.first_attempt[live][failed] + attempt * self.retry_gap[live][failed]
            parts += [(lc[failed], at, CH_FAILED_90, 1.0), (lc[failed], at + 90 * DAY, CH_FAILED_90, -1.0)]
        columns = []
        for i, dtype in enumerate((np.int64, np.int64, np.int64, np.float64)):
            columns.append(
                np.concatenate([np.broadcast_to(part[i], part[0].shape) for part in parts]).astype(dtype)
            )
        return tuple(columns)

    def _cash(self, rows: np.ndarray, ship: np.ndarray) -> None:
        """Invoice, payment attempts, dispute and clearing of shipped orders."""
        d = self.d
        issued = ship + d.invoice_lag[rows]
        due = issued + self.terms[rows]
        z = self.risk[self.cust[rows], self.clock.day_of(due)]
        method = self.method[rows]
        card, debit = method == 1, method == 2
        fail_p = _sigmoid(np.select([card, debit], [-3.0, -3.2], default=-4.6) + 0.9 * z)
        failures = np.cumprod(d.fail_u[rows] < fail_p[:, None], axis=1).sum(axis=1)
        lateness = _days(-6.0 + 3.5 * np.exp(0.55 * z) * d.lateness[rows])
        first = np.select([card, debit], [issued, due], default=due + lateness)
        gap = np.select([card, debit], [2 * DAY, 5 * DAY], default=4 * DAY)
        clear = np.maximum(first + failures * gap + card * HOUR, issued + HOUR)

        opened = issued + d.dispute_open[rows]
        disputed = d.dispute_u[rows] < _sigmoid(-3.6 + 0.5 * z + 2.2 * self.mispriced[rows])
        holds_payment = disputed & (clear > opened)
        clear = np.where(holds_payment, np.maximum(clear, opened + d.dispute_length[rows] + 2 * DAY), clear)
        # Half the disputes raised before payment end with the customer deducting the disputed amount.
        deducted = holds_payment & (d.deduct_u[rows] < 0.5)
        deduction = np.where(deducted, np.round(self.amount[rows] * d.dispute_share[rows], 2), 0.0)
        clear = np.where(d.default_u[rows] < _sigmoid(-7.2 + 1.5 * z), NEVER, clear)

        self.issued[rows], self.due[rows], self.clear[rows] = issued, due, clear
        self.first_attempt[rows], self.retry_gap[rows], self.failures[rows] = first, gap, failures
        self.disputed[rows] = disputed
        self.paid[rows] = self.amount[rows] - deduction


def _reject_probabilities(facts: pd.DataFrame, z: np.ndarray, true_match: np.ndarray) -> np.ndarray:
    n = len(facts)
    p = np.tile(np.asarray([0.0, 0.01, 0.02, 0.0, 0.03, 0.05]), (n, 1))
    p[:, _R["credit"]] = _sigmoid(-3.0 + 0.7 * z)
    p[:, _R["payment"]] = _sigmoid(-2.5 + 0.5 * z)
    p[:, _R["compliance"]] = np.where(true_match, 0.9, 0.02)
    return p


# ---------------------------------------------------------------------------------------------------------
# Tables


def _holds_frame(sim: _Simulation, rows: np.ndarray, orders: pd.DataFrame, censor: bool) -> pd.DataFrame:
    """Holds of the given orders; with ``censor``, as the ERP shows them at the end of the window."""
    placed, released, rejected, cancel = sim.hold_times(rows)
    # A hold still open when the order is cancelled ends with it; one not yet placed never is.
    ended_by_cancel = released > cancel[:, None]
    released = np.where(ended_by_cancel, cancel[:, None], released)
    rejected = rejected | ended_by_cancel
    exists = sim.held[rows] & (placed < cancel[:, None])
    if censor:
        exists &= placed < sim.clock.horizon
    r, k = np.nonzero(exists)
    o = rows[r]
    placed, released, rejected = placed[r, k], released[r, k], rejected[r, k]
    auto = ~rejected & (sim.d.auto_u[o, k] < np.asarray(HOLD_AUTO_SHARE)[k])
    done = released < sim.clock.horizon if censor else np.ones(len(r), dtype=bool)
    kind = np.where(rejected, "rejected", np.where(auto, "auto", "manual"))
    member = pd.Series(sim.d.user[o, k]).astype(str).str.zfill(2).to_numpy()
    user = np.asarray(HOLD_TEAM, dtype=object)[k] + member
    frame = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[o],
            "reason": np.asarray(HOLD_REASONS, dtype=object)[k],
            "placed_at": sim.clock.stamps(placed),
            "released_at": sim.clock.stamps(released, done),
            "release_kind": np.where(done, kind, None),
            "released_by": np.where(done, np.where(auto, "SYSTEM", user), None),
        }
    )
    return coerce("holds", frame.sort_values(["placed_at", "order_id", "reason"], ignore_index=True))


def _cash_tables(
    sim: _Simulation, orders: pd.DataFrame, facts: pd.DataFrame, cust: pd.DataFrame, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    clock, horizon = sim.clock, sim.clock.horizon
    inv = np.flatnonzero(~sim.open & (sim.issued < horizon))
    inv = inv[np.argsort(sim.issued[inv], kind="stable")]
    invoice_id = _ids("INV", len(inv), 8)
    customer_id = cust["customer_id"].to_numpy()[sim.cust[inv]]
    amount = sim.amount[inv]
    cleared = sim.clear[inv] < horizon
    invoices = pd.DataFrame(
        {
            "invoice_id": invoice_id,
            "customer_id": customer_id,
            "order_id": orders["order_id"].to_numpy()[inv],
            "issued_at": clock.stamps(sim.issued[inv]),
            "due_at": clock.stamps(sim.due[inv]),
            "amount": amount,
            "cleared_at": clock.stamps(sim.clear[inv], cleared),
            "paid_amount": np.where(cleared, sim.paid[inv], np.nan),
            "currency": cust["currency"].to_numpy()[sim.cust[inv]],
        }
    )

    method = sim.method[inv]
    channel = np.asarray([PAYMENT_CHANNEL[m] for m in PAYMENT_METHODS], dtype=object)[method]
    attempt = np.repeat(np.arange(3)[None, :], len(inv), axis=0)
    failed_at = sim.first_attempt[inv, None] + attempt * sim.retry_gap[inv, None]
    r, k = np.nonzero((attempt < sim.failures[inv, None]) & (failed_at < horizon))
    failure_status = np.where(method[r] == 1, "declined", "failed")
    payments = pd.DataFrame(
        {
            "customer_id": np.concatenate([customer_id[cleared], customer_id[r]]),
            "invoice_id": np.concatenate([invoice_id[cleared], invoice_id[r]]),
            "t": np.concatenate([sim.clear[inv][cleared], failed_at[r, k]]),
            "amount": np.concatenate([sim.paid[inv][cleared], amount[r]]),
            "method": np.concatenate([channel[cleared], channel[r]]),
            "status": np.concatenate([np.full(cleared.sum(), "ok"), failure_status]),
        }
    ).sort_values(["t", "invoice_id", "status"], kind="stable", ignore_index=True)
    payments.insert(0, "payment_id", _ids("PAY", len(payments), 9))
    payments.insert(3, "received_at", clock.stamps(payments.pop("t").to_numpy()))

    opened = sim.issued[inv] + sim.d.dispute_open[inv]
    has = sim.disputed[inv] & (opened < horizon)
    closed = opened + sim.d.dispute_length[inv]
    reasons = np.asarray(["pricing", "quantity", "damaged", "not_received", "other"], dtype=object)
    mispriced = facts["price_mismatch"].to_numpy()[inv]
    about_price = mispriced & (rng.random(len(inv)) < 0.7)
    reason = np.where(about_price, "pricing", reasons[rng.integers(0, len(reasons), len(inv))])
    disputes = pd.DataFrame(
        {
            "customer_id": customer_id[has],
            "invoice_id": invoice_id[has],
            "t": opened[has],
            "closed_at": clock.stamps(closed[has], closed[has] < horizon),
            "amount": np.round(amount[has] * sim.d.dispute_share[inv][has], 2),
            "reason": reason[has],
        }
    ).sort_values(["t", "invoice_id"], ignore_index=True)
    disputes.insert(0, "dispute_id", _ids("DSP", len(disputes), 7))
    disputes.insert(3, "opened_at", clock.stamps(disputes.pop("t").to_numpy()))

    interactions = _interactions(rng, clock, cust, sim, inv)
    return {
        "invoices": coerce("invoices", invoices),
        "payments": coerce("payments", payments),
        "disputes": coerce("disputes", disputes),
        "interactions": coerce("interactions", interactions),
    }


def _interactions(
    rng: np.random.Generator, clock: _Clock, cust: pd.DataFrame, sim: _Simulation, inv: np.ndarray
) -> pd.DataFrame:
    """Collection steps on overdue invoices, promises to pay and broken ones, and ordinary contacts."""
    horizon = clock.horizon
    due, clear = sim.due[inv], sim.clear[inv]
    overdue = np.minimum(clear, horizon) - due
    steps = np.where(overdue > 5 * DAY, np.minimum(1 + (overdue - 5 * DAY) // (14 * DAY), 8), 0)
    i = np.repeat(np.arange(len(inv)), steps)
    step_no = pd.Series(i).groupby(i).cumcount().to_numpy()
    step_at = due[i] + 5 * DAY + step_no * 14 * DAY + _days(rng.uniform(0, 0.4, len(i)))
    keep = step_at < np.minimum(clear[i], horizon)
    i, step_at = i[keep], step_at[keep]
    open_amount = sim.amount[inv][i]
    promise_at = step_at + HOUR
    promised = (rng.random(len(i)) < 0.35) & (promise_at < horizon)
    broken_at = promise_at + 8 * DAY
    broken = promised & (clear[i] > broken_at - DAY) & (broken_at < horizon)

    since = cust["since"].to_numpy()
    start = np.maximum(since, 0)
    contacts = rng.poisson(0.8 * (horizon - start) / (DAYS_PER_MONTH * DAY))
    cc = np.repeat(np.arange(len(cust)), contacts)
    contact_at = start[cc] + (rng.random(len(cc)) * (horizon - start[cc])).astype(np.int64)

    c = sim.cust[inv][i]
    frame = pd.DataFrame(
        {
            "cust": np.concatenate([c, c[promised], c[broken], cc]),
            "t": np.concatenate([step_at, promise_at[promised], broken_at[broken], contact_at]),
            "kind": np.concatenate(
                [
                    np.full(len(i), "collection_step"),
                    np.full(promised.sum(), "promise_to_pay"),
                    np.full(broken.sum(), "broken_promise"),
                    np.full(len(cc), "contact"),
                ]
            ),
            "amount": np.concatenate(
                [open_amount, open_amount[promised], open_amount[broken], np.full(len(cc), np.nan)]
            ),
        }
    ).sort_values(["t", "cust", "kind"], kind="stable", ignore_index=True)
    return pd.DataFrame(
        {
            "interaction_id": _ids("INT", len(frame), 9),
            "customer_id": cust["customer_id"].to_numpy()[frame["cust"]],
            "at": clock.stamps(frame["t"].to_numpy()),
            "kind": frame["kind"],
            "amount": frame["amount"],
        }
    )


def generate_world(spec: WorldSpec | None = None) -> World:
    """Generate the world of ``spec`` (default: :class:`WorldSpec()`).

    Args:
        spec: size, window, seed and ``as_of``.

    Returns:
        The :class:`World`; the same spec always gives the same world.
    """
    spec = spec or WorldSpec()
    started = time.perf_counter()
    rngs = {
        name: np.random.default_rng(child)
        for name, child in zip(_STREAMS, np.random.SeedSequence(spec.seed).spawn(len(_STREAMS)), strict=True)
    }
    clock = _Clock(pd.Timestamp(spec.as_of) - pd.Timedelta(days=spec.days), spec.days)
    sdn = sanctions.load_sample()

    cust = _customers(spec, rngs["customers"], sdn)
    risk = _risk_paths(rngs["risk"], cust["z0"].to_numpy(), spec.days)
    catalog = _catalog(rngs["catalog"])
    inventory = _inventory(rngs["inventory"], clock, catalog)
    profiles = _credit_profiles(rngs["profiles"], clock, cust, risk, catalog)
    orders = _orders(spec, rngs["orders"], clock, cust)
    lines = _order_lines(rngs["lines"], orders, cust, catalog)
    facts = _static_facts(orders, lines, cust, profiles, inventory)

    c, t = orders["cust"].to_numpy(), orders["t"].to_numpy()
    z = risk[c, clock.day_of(t)]
    noise = rngs["holds"].normal(0.0, NOISE_SD, (len(orders), len(HOLD_REASONS)))
    draws = _Draws.draw(rngs["holds"], rngs["cash"], len(orders))
    true_match = (cust["sanctions_kind"] == "exact").to_numpy()
    sim = _Simulation(
        clock,
        orders,
        facts,
        cust,
        risk,
        draws,
        _static_logits(facts, z, noise),
        _reject_probabilities(facts, z, true_match[c]),
    )
    sim.run(len(cust))

    decided = np.flatnonzero(~sim.open)
    tables = {
        "customers": _customers_table(cust, clock),
        "credit_profiles": _profiles_table(profiles, cust, clock),
        "bureau_reports": coerce("bureau_reports", _bureau_reports(rngs["bureau"], clock, cust, risk)),
        "orders": _orders_table(orders, facts, cust, sim),
        "order_lines": coerce("order_lines", lines),
        "holds": _holds_frame(sim, decided, orders, censor=True),
        "inventory": _inventory_table(inventory, catalog, clock),
        "sanctions_entries": read_sanctions_entries(sanctions.SAMPLE_PATH),
        **_cash_tables(sim, orders, facts, cust, rngs["crm"]),
    }
    tables = {name: tables[name] for name in TABLES}
    world = World(
        spec=spec,
        tables=tables,
        truth=_truth(orders, sim),
        customer_truth=_customer_truth(cust, risk),
        future_holds=_holds_frame(sim, np.flatnonzero(sim.open), orders, censor=False),
        rule_facts=_rule_facts(orders, facts, sim),
        sdn=sdn,
    )
    held = tables["holds"]["order_id"].nunique() / max(1, len(decided))
    logger.info(
        "generated demo world: %d customers, %d orders (%d open), %d holds on %.1f%% of decided orders "
        "in %.1f s",
        len(cust),
        len(orders),
        int(sim.open.sum()),
        len(tables["holds"]),
        100 * held,
        time.perf_counter() - started,
    )
    return world


def _customers_table(cust: pd.DataFrame, clock: _Clock) -> pd.DataFrame:
    frame = cust[["customer_id", "name", "country", "industry", "segment", "size_band"]].assign(
        customer_since=clock.stamps(cust["since"].to_numpy()).to_numpy(),
        payment_terms_days=cust["payment_terms_days"],
        currency=cust["currency"],
    )
    return coerce("customers", frame)


def _profiles_table(profiles: pd.DataFrame, cust: pd.DataFrame, clock: _Clock) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": cust["customer_id"].to_numpy()[profiles["cust"]],
            "valid_from": clock.stamps(profiles["t"].to_numpy()),
            "credit_limit": profiles["credit_limit"].to_numpy(),
            "internal_score": profiles["internal_score"].to_numpy(),
            "risk_class": profiles["risk_class"].to_numpy(),
        }
    ).sort_values(["valid_from", "customer_id"], ignore_index=True)
    return coerce("credit_profiles", frame)


def _inventory_table(inventory: pd.DataFrame, catalog: pd.DataFrame, clock: _Clock) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "product_id": catalog["product_id"].to_numpy()[inventory["product"]],
            "as_of": clock.stamps(inventory["t"].to_numpy()),
            "available": inventory["available"].to_numpy(),
        }
    )
    return coerce("inventory", frame)


def _orders_table(
    orders: pd.DataFrame, facts: pd.DataFrame, cust: pd.DataFrame, sim: _Simulation
) -> pd.DataFrame:
    c = orders["cust"].to_numpy()
    status = np.where(sim.open, "open", np.where(sim.cancel < sim.clock.horizon, "cancelled", "closed"))
    as_entered = [
        "order_id", "ship_to_country", "ship_to_city", "ship_to_street", "ship_to_postcode", "po_number",
    ]  # fmt: skip
    frame = orders[as_entered].assign(
        customer_id=cust["customer_id"].to_numpy()[c],
        created_at=sim.clock.stamps(orders["t"].to_numpy()).to_numpy(),
        requested_date=sim.clock.stamps(orders["requested"].to_numpy()).to_numpy(),
        amount=facts["amount"].to_numpy(),
        currency=cust["currency"].to_numpy()[c],
        payment_method=np.asarray(PAYMENT_METHODS, dtype=object)[orders["method"].to_numpy()],
        segment=cust["segment"].to_numpy()[c],
        status=status,
    )
    return coerce("orders", frame)


def _truth(orders: pd.DataFrame, sim: _Simulation) -> pd.DataFrame:
    frame = pd.DataFrame({"order_id": orders["order_id"].astype("string")})
    frame["p_any"] = 1.0 - np.prod(1.0 - sim.p, axis=1)
    for k, reason in enumerate(HOLD_REASONS):
        frame[f"p_{reason}"] = sim.p[:, k]
    return frame


def _customer_truth(cust: pd.DataFrame, risk: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": cust["customer_id"].astype("string"),
            "sanctions_kind": cust["sanctions_kind"].astype("string"),
            "sanctions_true_match": pd.array(cust["sanctions_kind"] == "exact", dtype="boolean"),
            "sdn_ent_num": cust["sdn_ent_num"].astype("string"),
            "screening_score": cust["screening_score"].to_numpy(),
            "hidden_risk_start": risk[:, 0],
            "hidden_risk_as_of": risk[:, -1],
        }
    )


_STATIC_FACT_COLUMNS = (
    "missing_po", "po_required", "missing_ship_to", "price_mismatch", "screening_score",
    "risky_country", "ship_abroad", "short_lines", "prior_orders", "size_ratio", "new_customer",
)  # fmt: skip


def _rule_facts(orders: pd.DataFrame, facts: pd.DataFrame, sim: _Simulation) -> pd.DataFrame:
    state = sim.state
    return pd.DataFrame(
        {
            "order_id": orders["order_id"].astype("string"),
            "exposure": sim.exposure,
            "credit_limit": facts["credit_limit"].to_numpy(),
            "utilisation": sim.exposure / facts["credit_limit"].to_numpy(),
            "overdue_invoices": state[:, CH_OVERDUE].round().astype(np.int64),
            "overdue_30_invoices": state[:, CH_OVERDUE_30].round().astype(np.int64),
            "failed_payments_90d": state[:, CH_FAILED_90].round().astype(np.int64),
            "risk_class": facts["risk_class"].astype("string"),
            **{column: facts[column].to_numpy() for column in _STATIC_FACT_COLUMNS},
            "payment_method": np.asarray(PAYMENT_METHODS, dtype=object)[facts["payment_method"].to_numpy()],
        }
    )


# ---------------------------------------------------------------------------------------------------------
# Writing


def _sql_types(table: str) -> dict:
    import sqlalchemy as sa

    kinds = {
        "str": sa.Text(),
        "float": sa.Float(),
        "int": sa.BigInteger(),
        "bool": sa.Boolean(),
        "ts": sa.DateTime(timezone=True),
    }
    return {c.name: kinds[c.kind] for c in TABLES[table].columns}


def _index(conn, table: str, columns: tuple[str, ...], unique: bool = False) -> None:
    import sqlalchemy as sa

    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    name = f"{'ux' if unique else 'ix'}_{table}_{'_'.join(columns)}"
    sa.Index(name, *(reflected.c[c] for c in columns), unique=unique).create(conn)


def _write_erp_table(conn, table: str, frame: pd.DataFrame) -> int:
    spec = TABLES[table]
    frame.to_sql(table, conn, if_exists="replace", index=False, dtype=_sql_types(table), chunksize=20_000)
    _index(conn, table, spec.key, unique=True)
    for column in ("customer_id", "order_id", "invoice_id", spec.time_column):
        if column and column in spec.column_names and (column,) != spec.key[:1]:
            _index(conn, table, (column,))
    return len(frame)


def _csv_extract(frame: pd.DataFrame, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n")
    return len(frame)


def write_demo_erp(world: World, erp_url: str, drop_dir: Path) -> dict[str, int]:
    """Write the world's ERP tables and truth into a database and its file extracts under ``drop_dir``.

    Existing tables of the same names are replaced. Truth tables (``truth_*``) share the database but are
    no part of the ERP: ingestion never reads them.

    Args:
        world: from :func:`generate_world`.
        erp_url: SQLAlchemy URL of the demo ERP database (SQLite or PostgreSQL).
        drop_dir: folder receiving ``bureau/bureau_reports.csv``, ``crm/interactions.csv`` and
            ``sanctions/sdn.csv``.

    Returns:
        Rows written per table and per extract (keyed by table name or relative file path).
    """
    import sqlalchemy as sa

    started = time.perf_counter()
    counts: dict[str, int] = {}
    url = sa.make_url(erp_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ERP_TABLES:
                counts[table] = _write_erp_table(conn, table, world.tables[table])
            for table, frame, key in (
                (TRUTH_TABLE, world.truth, ("order_id",)),
                (TRUTH_CUSTOMERS_TABLE, world.customer_truth, ("customer_id",)),
                (TRUTH_FUTURE_HOLDS_TABLE, world.future_holds, ("order_id", "reason")),
            ):
                frame.to_sql(table, conn, if_exists="replace", index=False, chunksize=20_000)
                _index(conn, table, key, unique=True)
                counts[table] = len(frame)
    finally:
        engine.dispose()

    drop_dir = Path(drop_dir)
    for table, relative in FILE_TABLES.items():
        counts[relative] = _csv_extract(world.tables[table], drop_dir / relative)
    counts[SDN_FILE] = sanctions.write_sdn(world.sdn, drop_dir / SDN_FILE)
    logger.info(
        "wrote demo ERP to %s (%d orders, %d holds) and 3 extracts to %s in %.1f s",
        url.render_as_string(hide_password=True),
        counts["orders"],
        counts["holds"],
        drop_dir,
        time.perf_counter() - started,
    )
    return counts
