"""Credit-limit recommendations per customer, from risk, payment behaviour and usage.

For each customer with an open order scored in the interval:

- **usage**: the peak exposure (open receivables, open orders and the order itself) over the
  customer's orders of the last 90 days, and the limit that peak would need to use only
  ``target_utilisation`` of it (rounded up to ``round_to``);
- **risk**: the mean probability of any hold of its open orders, as scored;
- **payment behaviour**: the share of invoices paid on time and the amount overdue.

A low-risk customer who pays on time and owes nothing overdue gets the limit its usage needs, when
that is more than today's; a high-risk or late-paying customer gets a lower limit (at most
``max_decrease_share`` lower, never below today's exposure). An increase of at most
``auto_approve_max_increase_share`` of the limit and ``auto_approve_max_increase`` for a low-risk
customer is approved automatically; every other change goes to the review queue. Each row says why.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from include import config, warehouse

if TYPE_CHECKING:
    import pandas as pd

    from include.policy import Policy

logger = logging.getLogger(__name__)

TABLE = "credit_limit_recommendations"
USAGE_WINDOW_DAYS = 90
COLUMNS = [
    "customer_id",
    "as_of",
    "current_limit",
    "recommended_limit",
    "change",
    "decision",
    "reason",
    "risk",
    "peak_exposure",
    "on_time_share",
    "overdue_amount",
    "policy_version",
]


def _money(value: float) -> str:
    return f"{value:,.0f}"


def customer_facts(
    features: pd.DataFrame, orders: pd.DataFrame, decisions: pd.DataFrame, as_of: datetime
) -> pd.DataFrame:
    """One row per customer with a scored open order: limit, peak exposure, risk, payment behaviour."""
    import pandas as pd

    frame = features[["credit_limit", "exposure", "inv_on_time_share", "overdue_amount"]].join(
        orders[["customer_id", "created_at"]], how="inner"
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    now = pd.Timestamp(as_of)
    recent = frame[
        (frame["created_at"] > now - timedelta(days=USAGE_WINDOW_DAYS)) & (frame["created_at"] <= now)
    ]
    latest = recent.sort_values(["created_at"]).groupby("customer_id").tail(1).set_index("customer_id")
    risk = decisions.assign(risk=decisions["risk"].astype(float)).groupby("customer_id")["risk"].mean()
    facts = pd.DataFrame(
        {
            "current_limit": latest["credit_limit"],
            "exposure": latest["exposure"],
            "peak_exposure": recent.groupby("customer_id")["exposure"].max(),
            "on_time_share": latest["inv_on_time_share"],
            "overdue_amount": latest["overdue_amount"].fillna(0.0),
        }
    ).join(risk.rename("risk"), how="inner")
    return facts.sort_index()


def recommend(facts: pd.DataFrame, policy: Policy, *, as_of: str) -> pd.DataFrame:
    """A recommendation per customer of ``facts`` (see :func:`customer_facts`) under the policy."""
    import pandas as pd

    rules = policy.credit_limits
    rows = []
    for customer, f in facts.iterrows():
        row = _one(f, rules)
        rows.append({"customer_id": str(customer), "as_of": as_of, **row, "policy_version": policy.version})
    out = pd.DataFrame(rows, columns=COLUMNS)
    counts = out["decision"].value_counts().to_dict() if len(out) else {}
    logger.info("Credit limits for %s: %s customers, %s", as_of, len(out), counts)
    return out


def _one(f: pd.Series, rules: dict[str, float]) -> dict[str, Any]:
    step = rules["round_to"]
    limit, peak = f["current_limit"], f["peak_exposure"]
    risk, on_time, overdue = float(f["risk"]), f["on_time_share"], float(f["overdue_amount"])
    facts = {
        "risk": round(risk, 4),
        "peak_exposure": None if _missing(peak) else round(float(peak), 2),
        "on_time_share": None if _missing(on_time) else round(float(on_time), 4),
        "overdue_amount": round(overdue, 2),
    }
    behaviour = (
        f"mean hold probability {risk:.0%}, "
        + ("no paid invoice yet" if _missing(on_time) else f"{on_time:.0%} of invoices paid on time")
        + (f", {_money(overdue)} overdue" if overdue > 0 else "")
    )
    if _missing(peak):
        return {**facts, **_keep(limit, f"no exposure known in the last {USAGE_WINDOW_DAYS} days")}
    needed = math.ceil(float(peak) / rules["target_utilisation"] / step) * step
    if _missing(limit):
        return {
            **facts,
            "current_limit": None,
            "recommended_limit": float(needed),
            "change": float(needed),
            "decision": "review",
            "reason": f"no credit limit on file; peak exposure {_money(peak)} in {USAGE_WINDOW_DAYS} days "
            f"needs {_money(needed)} at {rules['target_utilisation']:.0%} use; {behaviour}",
        }
    limit = float(limit)
    low_risk = (
        risk <= rules["low_risk_max"]
        and not _missing(on_time)
        and on_time >= rules["min_on_time_share"]
        and overdue == 0
    )
    high_risk = risk >= rules["high_risk_min"] or (
        not _missing(on_time) and on_time < rules["min_on_time_share"]
    )
    usage = f"peak exposure {_money(peak)} in {USAGE_WINDOW_DAYS} days uses {peak / limit:.0%} of the limit"
    if low_risk and needed > limit:
        change = needed - limit
        small = (
            change <= limit * rules["auto_approve_max_increase_share"]
            and change <= rules["auto_approve_max_increase"]
        )
        return {
            **facts,
            "current_limit": limit,
            "recommended_limit": float(needed),
            "change": float(change),
            "decision": "auto_approved" if small else "review",
            "reason": f"increase: {usage}; low risk ({behaviour})"
            + ("" if small else "; larger than the policy approves by itself"),
        }
    if high_risk:
        floor = (
            math.ceil(max(float(f["exposure"]) if not _missing(f["exposure"]) else 0.0, 0.0) / step) * step
        )
        lower = max(limit * (1 - rules["max_decrease_share"]), floor)
        lower = math.floor(lower / step) * step if lower > floor else floor
        if lower < limit:
            return {
                **facts,
                "current_limit": limit,
                "recommended_limit": float(lower),
                "change": float(lower - limit),
                "decision": "review",
                "reason": f"decrease: high risk ({behaviour}); {usage}",
            }
    return {**facts, **_keep(limit, f"{usage}; {behaviour}")}


def _keep(limit, why: str) -> dict[str, Any]:
    value = None if _missing(limit) else float(limit)
    return {
        "current_limit": value,
        "recommended_limit": value,
        "change": 0.0,
        "decision": "keep",
        "reason": f"keep: {why}",
    }


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def recommend_limits(as_of: datetime) -> dict[str, Any]:
    """The DAG task: recommend limits from the newest snapshot and decisions, store them, queue reviews."""
    import pandas as pd
    from sqlalchemy import text

    from include.decisions import load_policy

    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    path, snap_as_of = warehouse.latest_features_dir(as_of)
    features = pd.read_parquet(path / "features.parquet")
    orders = pd.read_parquet(path / "orders.parquet")
    with warehouse.engine().connect() as conn:
        scored = conn.execute(
            text("SELECT MAX(as_of) FROM decisions WHERE as_of <= :a"), {"a": warehouse.as_of_label(as_of)}
        ).scalar()
        if scored is None:
            raise LookupError(
                f"no scored interval at or before {warehouse.as_of_label(as_of)}: run holdcast_score first"
            )
        decisions = pd.read_sql(
            text("SELECT customer_id, risk FROM decisions WHERE as_of = :a"), conn, params={"a": scored}
        )
    label = warehouse.as_of_label(as_of)
    out = recommend(customer_facts(features, orders, decisions, snap_as_of), policy, as_of=label)
    warehouse.replace_rows(TABLE, out, where={"as_of": label})
    review = out[out["decision"] == "review"]
    queue = config.HOLDCAST_OUTBOX_DIR.get() / "credit_limit_review" / f"{label}.csv"
    queue.parent.mkdir(parents=True, exist_ok=True)
    review.to_csv(queue, index=False)
    summary = {
        "as_of": label,
        "customers": len(out),
        "auto_approved": int((out["decision"] == "auto_approved").sum()),
        "review": len(review),
        "keep": int((out["decision"] == "keep").sum()),
        "increase_total": float(out.loc[out["change"] > 0, "change"].sum()),
        "decrease_total": float(out.loc[out["change"] < 0, "change"].sum()),
        "review_queue": str(queue),
    }
    logger.info("Credit limits: %s", summary)
    return summary
