"""Turn scores into decisions with the policy file: band, reasons, evidence, team, suggested action.

The policy is validated on load: a wrong key or value names the file and the path inside it. The
decision of an order is a pure function of its scores, its feature row and the policy, so the same
inputs always give the same decision and the same ``decision_hash``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from include import canonical
from include.policy import REASON_CODES, Band, HardRule, Policy, PolicyError, load_policy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["DECISION_COLUMNS", "REASON_CODES", "Band", "Policy", "PolicyError", "decide", "load_policy"]

logger = logging.getLogger(__name__)

DECISION_COLUMNS = [
    "order_id",
    "customer_id",
    "risk",
    "band",
    "at_risk",
    "reasons",
    "evidence",
    "team",
    "suggested_action",
    "auto_release",
    "what_clears",
    "notes",
    "model_name",
    "model_version",
    "policy_version",
    "as_of",
    "decision_hash",
]
SHOWN_COLUMNS = [
    c
    for c in DECISION_COLUMNS
    if c not in ("order_id", "customer_id", "model_name", "policy_version", "as_of", "decision_hash")
]
"""What the ERP shows of a decision, in order: the decision hash covers exactly these."""


def decision_sql_columns(*, as_of_column: str, key: bool) -> list:
    """SQLAlchemy columns of a stored decision, in :data:`DECISION_COLUMNS` order.

    Args:
        as_of_column: the name the interval's column takes in the table.
        key: whether ``order_id`` is the table's primary key (one current decision per order).
    """
    from sqlalchemy import Boolean, Column, Float, String, Text

    return [
        Column("order_id", String(64), primary_key=key, nullable=False),
        Column("customer_id", String(64)),
        Column("risk", Float),
        Column("band", String(32)),
        Column("at_risk", Boolean),
        Column("reasons", Text),
        Column("evidence", Text),
        Column("team", String(64)),
        Column("suggested_action", Text),
        Column("auto_release", Boolean),
        Column("what_clears", Text),
        Column("notes", Text),
        Column("model_name", String(128)),
        Column("model_version", String(32)),
        Column("policy_version", String(32)),
        Column(as_of_column, String(32), nullable=False),
        Column("decision_hash", String(32)),
    ]


def decide(
    scores: pd.DataFrame,
    features: pd.DataFrame,
    policy: Policy,
    *,
    customer_of: pd.Series | Mapping[str, str],
    model_name: str,
    model_version: str,
    as_of: str,
    fail_safe: str | None = None,
    overdue: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One decision per scored order.

    Args:
        scores: index order_id; ``p_any``, ``p_<reason>`` and ``top_factors`` (JSON list of
            [feature, contribution]) as the model serves them.
        features: the feature rows the scores came from (same index), for hard rules and evidence.
        policy: the loaded policy.
        customer_of: customer id per order id: a Series indexed by order id, or a mapping.
        model_name, model_version: the model behind the scores.
        as_of: the interval label the decisions belong to.
        fail_safe: why auto-release is off for this run (validation or drift failed), or None.
            Every decision then says so in its notes and none is an auto-release candidate.
        overdue: overdue invoices at ``as_of`` (:func:`include.clearing.overdue_invoices`), so that
            "what clears it" can name the invoices to collect; None names amounts only.

    Returns:
        A frame with :data:`DECISION_COLUMNS`, one row per order.
    """
    import numpy as np
    import pandas as pd

    from features.evidence import evidence_for
    from include.clearing import what_clears

    features = features.reindex(scores.index)
    n = len(scores)
    reasons_known = [r for r in canonical.HOLD_REASONS if f"p_{r}" in scores.columns]
    risk = scores["p_any"].to_numpy(dtype=float)
    segments = features["segment"].to_numpy(dtype=object) if "segment" in features.columns else None
    band = policy.bands_of(risk, segments)
    model_at_risk = np.isin(band, list(policy.at_risk_bands))

    # Hard rules: the first block rule an order meets routes it; a clear rule takes it off the list
    # unless a block rule also fired. Few orders meet one, so their notes and evidence go row by row.
    notes: dict[int, list[str]] = {}
    rule_evidence: dict[int, list[str]] = {}
    blocked_by = np.full(n, None, dtype=object)
    cleared = np.zeros(n, dtype=bool)
    for rule in policy.hard_rules:
        hit = _rule_hits(rule, features)
        if rule.effect == "block":
            first = hit & (blocked_by == None)  # noqa: E711 (element-wise on an object array)
            blocked_by[first] = rule.reason
        else:
            cleared |= hit
        rows = np.flatnonzero(hit)
        values = (
            {c.feature: features[c.feature].iloc[rows].to_numpy(dtype=object) for c in rule.when}
            if len(rows)
            else {}
        )
        for k, i in enumerate(rows.tolist()):
            notes.setdefault(i, []).append(f"{rule.effect} rule {rule.name}")
            if rule.effect == "block":
                row = {name: column[k] for name, column in values.items()}
                rule_evidence.setdefault(i, []).extend(
                    evidence_for(row, list(row)) or [f"{c.feature} {row[c.feature]}" for c in rule.when]
                )
    blocked = blocked_by != None  # noqa: E711
    cleared &= ~blocked
    at_risk = (model_at_risk | blocked) & ~cleared

    reasons_json, top = _reasons(scores, reasons_known, at_risk, blocked_by, policy.reason_min_probability)
    routed = np.where(at_risk, top, None)

    # Evidence is worked out for the orders someone will look at: the at-risk ones. Values are read
    # from whole columns, since taking a row out of a wide frame costs more than the evidence itself.
    risky = np.flatnonzero(at_risk)
    evidence = np.full(n, "[]", dtype=object)
    if "top_factors" in scores.columns:
        factors = scores["top_factors"].iloc[risky].to_numpy(dtype=object)
        named_factors = [_FACTOR_NAME.findall(text) if isinstance(text, str) else [] for text in factors]
    else:
        named_factors = [[] for _ in risky]
    needed = sorted({name for names in named_factors for name in names} & set(features.columns))
    columns = {name: features[name].iloc[risky].to_numpy(dtype=object) for name in needed}
    for k, (i, names) in enumerate(zip(risky.tolist(), named_factors, strict=True)):
        said = list(rule_evidence.get(i, ()))
        if names:
            row = {name: columns[name][k] for name in names if name in columns}
            said += [s for s in evidence_for(row, names) if s not in said]
        if said:
            evidence[i] = json.dumps(said)

    auto = _auto_release(policy, risk, features, at_risk, blocked, cleared)
    if fail_safe:
        auto[:] = False
        off = f"auto-release off: {fail_safe}"
        for item in notes.values():
            item.append(off)
    notes_json = np.full(n, json.dumps([off]) if fail_safe else "[]", dtype=object)
    for i, item in notes.items():
        notes_json[i] = json.dumps(item)
    customers = _customers(scores.index, customer_of)
    at_risk_rows = features.iloc[risky].assign(customer_id=customers[risky])
    clears = np.full(n, None, dtype=object)
    clears[risky] = what_clears(
        list(routed[risky]), at_risk_rows, overdue, policy.credit_limits.get("round_to", 1000.0)
    )
    team = np.full(n, None, dtype=object)
    action = np.full(n, None, dtype=object)
    for reason in set(routed[risky].tolist()):
        mine = routed == reason
        team[mine] = policy.teams[reason]
        action[mine] = policy.actions[reason]
    frame = pd.DataFrame(
        {
            "order_id": scores.index.astype(str),
            "customer_id": customers,
            "risk": np.round(risk, 6),
            "band": band,
            "at_risk": at_risk,
            "reasons": reasons_json,
            "evidence": evidence,
            "team": team,
            "suggested_action": action,
            "auto_release": auto,
            "what_clears": clears,
            "notes": notes_json,
            "model_name": model_name,
            "model_version": str(model_version),
            "policy_version": policy.version,
            "as_of": as_of,
        }
    )
    frame["decision_hash"] = _hashes(frame)
    logger.info(
        "Decided %s orders under policy %s: %s at risk (%s by hard rule), %s cleared by rule, "
        "%s auto-release candidates%s",
        n,
        policy.version,
        int(at_risk.sum()),
        int(blocked.sum()),
        int(cleared.sum()),
        int(auto.sum()),
        f"; auto-release off: {fail_safe}" if fail_safe else "",
    )
    return frame[DECISION_COLUMNS]


_FACTOR_NAME = re.compile(r'\["([^"\\]+)",\s*')
"""A feature name in ``top_factors`` (``[["utilisation", 0.8], ...]``): names are plain identifiers."""


def _customers(order_ids: pd.Index, customer_of) -> np.ndarray:
    """The customer id of each order (None where unknown), from a Series or a mapping keyed by order id."""
    import pandas as pd

    keys = order_ids.astype(str)
    if not isinstance(customer_of, pd.Series):
        customer_of = pd.Series(customer_of, dtype=object)
    lookup = customer_of.set_axis(customer_of.index.astype(str))
    lookup = lookup[~lookup.index.duplicated(keep="last")]
    return lookup.reindex(keys).to_numpy(dtype=object, na_value=None)


def _reasons(scores, reasons_known, at_risk, blocked_by, min_probability) -> tuple[np.ndarray, np.ndarray]:
    """Per order, the JSON list of [reason, probability] named on the decision, likeliest first, and
    the reason the order would be routed for.

    A reason is named when its probability reaches ``min_probability``; an at-risk order whose reasons
    all stay below still gets its likeliest one; the reason a block rule gives comes first, with the
    model's own probability for it, and routes the order. Built column by column: ranked, so the named
    reasons are a prefix, and only named probabilities are turned into text.
    """
    import numpy as np

    n = len(scores)
    probs = scores[[f"p_{r}" for r in reasons_known]].to_numpy(dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked_p = np.round(np.take_along_axis(probs, order, axis=1), 4)
    ranked_names = np.array(reasons_known, dtype=object)[order]
    named = ranked_p >= min_probability
    if named.shape[1]:
        named[:, 0] |= at_risk
    text = np.full(n, "[", dtype=object)
    for j in range(named.shape[1]):
        rows = np.flatnonzero(named[:, j])
        numbers = np.array([repr(v) for v in ranked_p[rows, j].tolist()], dtype=object)
        piece = '["' + ranked_names[rows, j] + '", ' + numbers + "]"
        text[rows] = text[rows] + (piece if j == 0 else ", " + piece)
    text = text + "]"
    no_reason = np.array(canonical.UNSPECIFIED_REASON, dtype=object)
    top = np.where(named[:, 0], ranked_names[:, 0], no_reason) if named.shape[1] else np.full(n, no_reason)
    top = np.where(blocked_by != None, blocked_by, top)  # noqa: E711
    for i in np.flatnonzero(blocked_by != None):  # noqa: E711 (element-wise on an object array)
        reason = blocked_by[i]
        listed = [pair for pair in json.loads(text[i]) if pair[0] != reason]
        p = scores[f"p_{reason}"].iloc[i] if f"p_{reason}" in scores.columns else None
        text[i] = json.dumps([[reason, None if p is None else round(float(p), 4)], *listed])
    return text, top


def _rule_hits(rule: HardRule, features: pd.DataFrame):
    """Which orders meet every condition of ``rule``; an unknown value never meets one."""
    import numpy as np
    import pandas as pd

    hit = np.ones(len(features), dtype=bool)
    for cond in rule.when:
        if cond.feature not in features.columns:
            logger.warning(
                "Hard rule %s names feature %s, absent from the scored rows", rule.name, cond.feature
            )
            return np.zeros(len(features), dtype=bool)
        column = features[cond.feature]
        known = column.notna().to_numpy()
        if cond.test == "one_of":
            met = column.isin(cond.value).to_numpy()
        elif cond.test == "equals":
            met = (column == cond.value).fillna(False).to_numpy(dtype=bool)
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                met = {
                    "above": values > cond.value,
                    "at_least": values >= cond.value,
                    "below": values < cond.value,
                    "at_most": values <= cond.value,
                }[cond.test]
        hit &= known & met
    return hit


def _auto_release(policy: Policy, risk, features: pd.DataFrame, at_risk, blocked, cleared):
    """Orders that may go with no human look: cleared by a rule, or low risk within the policy's bounds."""
    import numpy as np

    rules = policy.auto_release
    ok = ~at_risk & ~blocked & (risk < rules.max_risk)
    if rules.max_order_amount is not None:
        if "order_amount" in features.columns:
            amount = features["order_amount"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                ok &= amount <= rules.max_order_amount
        else:
            ok[:] = False
    return ok | cleared


_HEX_PAIRS = [f"{b:02x}" for b in range(256)]


def risk_text(risk: pd.Series) -> pd.Series:
    """``risk.astype("string")``; ten times faster for float64 risks in [0, 1] (see ``float_text``)."""
    import numpy as np
    import pandas as pd

    from include.text import float_text

    if risk.dtype != np.float64 or not len(risk) or not risk.between(0, 1).all():
        return risk.astype("string")
    return pd.Series(pd.array(float_text(risk.to_numpy()), dtype="string"), index=risk.index, name=risk.name)


def _hashes(frame: pd.DataFrame) -> np.ndarray:
    """Hash of what the ERP would show; the as-of date is left out so an unchanged decision is not news.

    Each 64-bit hash is written as 16 hex digits: its eight bytes, most significant first, are looked
    up as two-digit pairs and the pairs of a row read as one string.
    """
    import numpy as np
    import pandas as pd

    shown = pd.DataFrame(
        {c: risk_text(frame[c]) if c == "risk" else frame[c].astype("string") for c in SHOWN_COLUMNS}
    )
    hashes = pd.util.hash_pandas_object(shown, index=False).to_numpy(dtype=np.uint64)
    pairs = np.array(_HEX_PAIRS, dtype="U2")[hashes.astype(">u8").view(np.uint8).reshape(-1, 8)]
    return np.ascontiguousarray(pairs).view("U16").ravel().astype(object)
