"""Benchmark: point-in-time feature rebuild against a hand-written DuckDB query (README.md, Targets).

The target: rebuilding features for 1M orders over 10M receivable lines costs at most about 2x a
hand-written DuckDB query computing the same aggregates. This script generates canonical ``orders``
and ``invoices`` directly with numpy (not the demo ERP generator, which is built for realism, not
size), then times in one process, on the same in-memory pandas frames:

- ``features_receivables``: :func:`features.build.build_order_features` with only the receivables
  family, the aggregates the query computes;
- ``features_full``: the full build (every family; the tables other than orders and invoices are
  empty, so the extra cost is the order-history, exposure and per-order families);
- ``duckdb_load``: copying the frames into DuckDB tables, reported but not part of the baseline;
- ``sql_range_join``: the query one would write by hand, each order joined to its customer's
  invoices issued before it, with filtered aggregates;
- ``sql_asof``: the same aggregates as running sums per customer and an ``ASOF JOIN``, the other
  idiomatic DuckDB formulation (skipped with ``--no-asof``).

Both sides are checked to agree on a sample of orders before any figure is reported.

Usage::

    python -m bench.bench_features --orders 100000 --lines 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

START = np.datetime64("2022-01-01T00:00:00", "s").astype(np.int64)
PERIOD_DAYS = 3 * 365
DAY = 86_400
COMPARED = [
    "inv_cleared_count",
    "inv_on_time_share",
    "inv_late_1_30_count",
    "inv_late_31_60_count",
    "inv_late_61_90_count",
    "inv_late_90p_count",
    "inv_avg_days_late",
    "open_invoice_count",
    "open_receivables_amount",
    "overdue_count",
    "overdue_amount",
]
"""Receivables aggregates both sides compute, under the feature names."""

_PREPARED = """
CREATE OR REPLACE TEMP VIEW inv AS
SELECT customer_id, issued_at, due_at, cleared_at, amount,
       floor(date_diff('second', due_at, cleared_at) / 86400.0) AS days_late
FROM invoices
"""

RANGE_JOIN_SQL = """
SELECT o.order_id,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at)                  AS inv_cleared_count,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at AND i.days_late <= 0)
    / nullif(count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at), 0)  AS inv_on_time_share,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at AND i.days_late BETWEEN 1 AND 30)
                                                                                  AS inv_late_1_30_count,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at AND i.days_late BETWEEN 31 AND 60)
                                                                                  AS inv_late_31_60_count,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at AND i.days_late BETWEEN 61 AND 90)
                                                                                  AS inv_late_61_90_count,
  count(i.issued_at) FILTER (WHERE i.cleared_at < o.created_at AND i.days_late > 90)
                                                                                  AS inv_late_90p_count,
  avg(greatest(i.days_late, 0)) FILTER (WHERE i.cleared_at < o.created_at)       AS inv_avg_days_late,
  count(i.issued_at) FILTER (WHERE i.cleared_at IS NULL OR i.cleared_at >= o.created_at)
                                                                                  AS open_invoice_count,
  coalesce(sum(i.amount) FILTER (WHERE i.cleared_at IS NULL OR i.cleared_at >= o.created_at), 0)
                                                                                  AS open_receivables_amount,
  count(i.issued_at) FILTER (WHERE (i.cleared_at IS NULL OR i.cleared_at >= o.created_at)
                                   AND i.due_at < o.created_at)                   AS overdue_count,
  coalesce(sum(i.amount) FILTER (WHERE (i.cleared_at IS NULL OR i.cleared_at >= o.created_at)
                                       AND i.due_at < o.created_at), 0)           AS overdue_amount
FROM orders o
LEFT JOIN inv i ON i.customer_id = o.customer_id AND i.issued_at < o.created_at
GROUP BY o.order_id
"""

ASOF_SQL = """
WITH events AS (
  -- issued: opens; cleared: closes and scores lateness; overdue from max(issued, due) until cleared
  SELECT customer_id, issued_at AS ts, amount AS open_amt, 1 AS open_n, 0 AS cleared_n, 0 AS on_time_n,
         0 AS b1, 0 AS b2, 0 AS b3, 0 AS b4, 0 AS late_sum, 0.0 AS overdue_amt, 0 AS overdue_n
  FROM inv
  UNION ALL
  SELECT customer_id, cleared_at, -amount, -1, 1, (days_late <= 0)::INT,
         (days_late BETWEEN 1 AND 30)::INT, (days_late BETWEEN 31 AND 60)::INT,
         (days_late BETWEEN 61 AND 90)::INT, (days_late > 90)::INT, greatest(days_late, 0),
         CASE WHEN cleared_at > greatest(issued_at, due_at) THEN -amount ELSE 0 END,
         CASE WHEN cleared_at > greatest(issued_at, due_at) THEN -1 ELSE 0 END
  FROM inv WHERE cleared_at IS NOT NULL
  UNION ALL
  SELECT customer_id, greatest(issued_at, due_at), 0, 0, 0, 0, 0, 0, 0, 0, 0, amount, 1
  FROM inv WHERE cleared_at IS NULL OR cleared_at > greatest(issued_at, due_at)
),
running AS (
  SELECT customer_id, ts,
    sum(sum(open_amt)) OVER w AS open_amt, sum(sum(open_n)) OVER w AS open_n,
    sum(sum(cleared_n)) OVER w AS cleared_n, sum(sum(on_time_n)) OVER w AS on_time_n,
    sum(sum(b1)) OVER w AS b1, sum(sum(b2)) OVER w AS b2,
    sum(sum(b3)) OVER w AS b3, sum(sum(b4)) OVER w AS b4,
    sum(sum(late_sum)) OVER w AS late_sum, sum(sum(overdue_amt)) OVER w AS overdue_amt,
    sum(sum(overdue_n)) OVER w AS overdue_n
  FROM events GROUP BY customer_id, ts
  WINDOW w AS (PARTITION BY customer_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
)
SELECT o.order_id,
  coalesce(r.cleared_n, 0) AS inv_cleared_count,
  r.on_time_n / nullif(r.cleared_n, 0) AS inv_on_time_share,
  coalesce(r.b1, 0) AS inv_late_1_30_count, coalesce(r.b2, 0) AS inv_late_31_60_count,
  coalesce(r.b3, 0) AS inv_late_61_90_count, coalesce(r.b4, 0) AS inv_late_90p_count,
  r.late_sum / nullif(r.cleared_n, 0) AS inv_avg_days_late,
  coalesce(r.open_n, 0) AS open_invoice_count, coalesce(r.open_amt, 0) AS open_receivables_amount,
  coalesce(r.overdue_n, 0) AS overdue_count, coalesce(r.overdue_amt, 0) AS overdue_amount
FROM orders o ASOF LEFT JOIN running r ON o.customer_id = r.customer_id AND o.created_at > r.ts
"""


class BenchmarkMismatch(RuntimeError):
    """The feature build and the SQL query disagree, so no timing is worth reporting."""


def _strings(prefix: str, numbers: np.ndarray) -> pd.Series:
    """A pandas ``string`` column of ``prefix`` + number, built in Arrow to keep 10M ids cheap."""
    text = pa.array(numbers.astype(np.int64)).cast(pa.string())
    joined = pc.binary_join_element_wise(pa.scalar(prefix), text, "")
    return pd.Series(pd.array(joined, dtype="string"))


def _timestamps(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True))


def make_tables(
    n_orders: int, n_lines: int, seed: int, orders_per_customer: float = 20.0
) -> dict[str, pd.DataFrame]:
    """Synthetic canonical ``orders`` and ``invoices`` (``n_lines`` receivable lines) over three years.

    Customers differ in size (log-normal activity weights, so a few large customers hold many
    orders) and in payment habit (a mean lateness per customer); each invoice belongs to a random
    order of its customer and is issued within 30 days of it. Invoices not yet cleared at the end of
    the period stay open; 2% are never paid.
    """
    rng = np.random.default_rng(seed)
    n_customers = max(50, int(n_orders / orders_per_customer))
    weights = rng.lognormal(0.0, 1.0, n_customers)
    cumulative = np.cumsum(weights / weights.sum())
    order_customer = np.minimum(np.searchsorted(cumulative, rng.random(n_orders)), n_customers - 1)
    created = START + rng.integers(0, PERIOD_DAYS * DAY, n_orders)
    order_amount = np.round(rng.lognormal(7.0, 1.2, n_orders), 2)

    of_order = rng.integers(0, n_orders, n_lines)
    issued = created[of_order] + rng.integers(0, 30 * DAY, n_lines)
    customer = order_customer[of_order]
    terms = rng.choice(np.array([14, 30, 45, 60]), n_customers)[customer]
    due = issued + terms * DAY
    habit = rng.gamma(1.5, 8.0, n_customers)[customer] - 5.0
    cleared = due + np.round(rng.normal(habit, 12.0) * DAY).astype(np.int64)
    cleared = np.maximum(cleared, issued + DAY)
    end = START + PERIOD_DAYS * DAY
    unpaid = (rng.random(n_lines) < 0.02) | (cleared >= end)

    orders = pd.DataFrame(
        {
            "order_id": _strings("O", np.arange(n_orders)),
            "customer_id": _strings("C", order_customer),
            "created_at": _timestamps(created),
            "amount": order_amount,
            "status": pd.Series(pd.array(np.full(n_orders, "closed"), dtype="string")),
        }
    )
    invoices = pd.DataFrame(
        {
            "invoice_id": _strings("I", np.arange(n_lines)),
            "customer_id": _strings("C", customer),
            "order_id": _strings("O", of_order),
            "issued_at": _timestamps(issued),
            "due_at": _timestamps(due),
            "amount": np.round(rng.lognormal(6.0, 1.0, n_lines), 2),
            "cleared_at": _timestamps(cleared).mask(unpaid),
        }
    )
    return {"orders": orders, "invoices": invoices}


def _timed(label: str, func, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - started
    logger.info("%s took %.2f s", label, seconds)
    return result, seconds


def _load(tables: dict[str, pd.DataFrame]):
    """An in-memory DuckDB holding the tables natively, so the queries are timed without any copy."""
    import duckdb

    con = duckdb.connect()
    for name in ("orders", "invoices"):
        con.register(f"{name}_frame", tables[name])
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_frame")
        con.unregister(f"{name}_frame")
    con.execute(_PREPARED)
    return con


def _query(con, sql: str) -> pd.DataFrame:
    return con.execute(sql).df().set_index("order_id")


def _check_agreement(features: pd.DataFrame, sql: pd.DataFrame, sample: np.ndarray, label: str) -> None:
    ids = features.index[sample]
    ours = features.loc[ids, COMPARED].to_numpy(dtype=np.float64)
    theirs = sql.loc[ids.astype(str), COMPARED].to_numpy(dtype=np.float64)
    # Amounts are summed in cents on our side and in floating point by DuckDB.
    close = np.isclose(ours, theirs, rtol=1e-9, atol=1e-6, equal_nan=True)
    if not close.all():
        row, col = np.argwhere(~close)[0]
        raise BenchmarkMismatch(
            f"{label}: order {ids[row]} column {COMPARED[col]}: features {ours[row, col]!r}, "
            f"SQL {theirs[row, col]!r} ({int((~close).sum())} of {close.size} values differ)"
        )


def run(
    n_orders: int,
    n_lines: int,
    seed: int = 0,
    *,
    orders_per_customer: float = 20.0,
    repeat: int = 2,
    asof: bool = True,
    sample: int = 5_000,
) -> dict:
    """Generate the tables, time the feature build and the SQL baselines, check they agree.

    Args:
        n_orders: Orders to featurise.
        n_lines: Receivable lines (invoices).
        seed: Seed of the generator.
        orders_per_customer: Average orders per customer; the range join grows with its square.
        repeat: Rounds of every measurement; the best round counts. The first touch of fresh memory
            is slow on a virtual machine, so a single round favours whichever side runs second.
        asof: Also time the window-and-ASOF-JOIN formulation of the query.
        sample: Orders on which the two sides are compared value by value.

    Returns:
        Sizes, best seconds per step, ``ratio_receivables`` and ``ratio_full`` (feature build over the
        faster SQL query; the target is at most about 2) and the peak memory of the process.

    Raises:
        BenchmarkMismatch: A compared value differs between the feature build and a query.
    """
    from features.build import build_order_features

    tables, generate_s = _timed("generate", make_tables, n_orders, n_lines, seed, orders_per_customer)
    con, load_s = _timed("load into duckdb", _load, tables)
    steps = {
        "features_receivables_s": lambda: build_order_features(tables, families=["receivables"]),
        "features_full_s": lambda: build_order_features(tables),
        "sql_range_join_s": lambda: _query(con, RANGE_JOIN_SQL),
    }
    if asof:
        steps["sql_asof_s"] = lambda: _query(con, ASOF_SQL)
    results: dict[str, pd.DataFrame] = {}
    timings: dict[str, float] = {}
    for round_no in range(repeat):
        for name, step in steps.items():
            results[name], seconds = _timed(f"{name} (round {round_no + 1})", step)
            timings[name] = min(seconds, timings.get(name, np.inf))
    con.close()

    rows = np.random.default_rng(seed + 1).choice(n_orders, min(sample, n_orders), replace=False)
    for name in (n for n in steps if n.startswith("sql_")):
        _check_agreement(results["features_receivables_s"], results[name], rows, name)
        _check_agreement(results["features_full_s"], results[name], rows, f"{name} vs the full build")
    # The baseline is the faster query on tables already inside DuckDB: loading them is not counted.
    sql_s = min(t for name, t in timings.items() if name.startswith("sql_"))
    prior = results["features_receivables_s"][["open_invoice_count", "inv_cleared_count"]].sum(axis=1)
    result = {
        "orders": n_orders,
        "lines": n_lines,
        "customers": int(tables["orders"]["customer_id"].nunique()),
        "join_pairs": int(prior.sum()),
        "compared_orders": len(rows),
        "rounds": repeat,
        "generate_s": round(generate_s, 3),
        "duckdb_load_s": round(load_s, 3),
        **{name: round(t, 3) for name, t in timings.items()},
        "ratio_receivables": round(timings["features_receivables_s"] / sql_s, 3),
        "ratio_full": round(timings["features_full_s"] / sql_s, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    logger.info(
        "Features for %d orders over %d lines: receivables %.1f s, full %.1f s, best SQL %.1f s",
        n_orders,
        n_lines,
        timings["features_receivables_s"],
        timings["features_full_s"],
        sql_s,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders to featurise")
    parser.add_argument("--lines", type=int, default=10_000_000, help="receivable lines (invoices)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders-per-customer", type=float, default=20.0, help="average customer size")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per measurement; the best counts")
    parser.add_argument("--no-asof", action="store_true", help="skip the window + ASOF JOIN query")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    figures = run(
        args.orders,
        args.lines,
        args.seed,
        orders_per_customer=args.orders_per_customer,
        repeat=args.repeat,
        asof=not args.no_asof,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
