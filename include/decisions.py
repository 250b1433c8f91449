"""Turn scores into decisions with the policy file: band, reasons, evidence, team, suggested action.

The policy is validated on load: a wrong key or value names the file and the path inside it. The
decision of an order is a pure function of its scores, its feature row and the policy, so the same
inputs always give the same decision and the same ``decision_hash``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include import canonical

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

REASON_CODES = (*canonical.HOLD_REASONS, canonical.UNSPECIFIED_REASON)
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
    "model_name",
    "model_version",
    "policy_version",
    "as_of",
    "decision_hash",
]


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
        Column("model_name", String(128)),
        Column("model_version", String(32)),
        Column("policy_version", String(32)),
        Column(as_of_column, String(32), nullable=False),
        Column("decision_hash", String(32)),
    ]


class PolicyError(ValueError):
    """The policy file is not what holdcast expects."""


@dataclass(frozen=True)
class Band:
    name: str
    min: float


@dataclass(frozen=True)
class Policy:
    version: str
    bands: tuple[Band, ...]
    at_risk_bands: frozenset[str]
    reason_min_probability: float
    teams: dict[str, str]
    actions: dict[str, str]

    @property
    def lowest_at_risk_min(self) -> float:
        """The smallest probability that can put an order in an at-risk band."""
        return min((b.min for b in self.bands if b.name in self.at_risk_bands), default=1.0)

    def bands_of(self, risk):
        """The band of each probability in ``risk`` (an array): the first band whose floor it reaches."""
        import numpy as np

        lows = np.array([b.min for b in self.bands])
        names = np.array([b.name for b in self.bands])
        # Bands run from the highest floor down to 0, so the first reached is the highest.
        return names[np.argmax(np.asarray(risk, dtype=float)[:, None] >= lows[None, :], axis=1)]


def load_policy(path: Path) -> Policy:
    """Read and check the policy file.

    Raises:
        PolicyError: naming the file, the path inside it and what was expected.
    """
    import yaml

    def fail(where: str, expected: str) -> PolicyError:
        return PolicyError(f"{path}: {where}: expected {expected}")

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"{path}: cannot read policy: {err}") from err
    if not isinstance(doc, dict):
        raise fail("top level", "a mapping")
    known = {"version", "bands", "at_risk_bands", "reason_min_probability", "reasons"}
    unknown = set(doc) - known
    if unknown:
        raise fail(f"keys {sorted(unknown)}", f"only {sorted(known)}")
    if not isinstance(doc.get("version"), str) or not doc["version"]:
        raise fail("version", "a non-empty string")

    bands = []
    for i, item in enumerate(doc.get("bands") or []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise fail(f"bands[{i}]", "a mapping with a string 'name' and a number 'min'")
        low = item.get("min")
        if not _is_number(low) or not 0.0 <= low <= 1.0:
            raise fail(f"bands[{i}].min", "a number between 0 and 1")
        bands.append(Band(item["name"], float(low)))
    if not bands:
        raise fail("bands", "at least one band")
    if [b.min for b in bands] != sorted((b.min for b in bands), reverse=True) or bands[-1].min != 0.0:
        raise fail("bands", "bands ordered from the highest 'min' down to a last band with min 0")

    names = [b.name for b in bands]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise fail("bands", f"each band name once; {repeated} repeat")
    at_risk = doc.get("at_risk_bands")
    if not isinstance(at_risk, list) or not at_risk or not set(at_risk) <= set(names):
        raise fail("at_risk_bands", f"a non-empty list of band names from {names}")
    threshold = doc.get("reason_min_probability", 0.15)
    if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
        raise fail("reason_min_probability", "a number between 0 and 1")

    reasons = doc.get("reasons") or {}
    if not isinstance(reasons, dict):
        raise fail("reasons", "a mapping of reason code to team and action")
    # An unknown key first: a typo ("payments") is the likelier mistake than a missing reason.
    extra = set(reasons) - set(REASON_CODES)
    if extra:
        raise fail(f"reasons.{sorted(extra)[0]}", f"a reason code from {list(REASON_CODES)}")
    teams, actions = {}, {}
    for code in REASON_CODES:
        entry = reasons.get(code)
        if not isinstance(entry, dict) or not entry.get("team") or not entry.get("action"):
            raise fail(f"reasons.{code}", "a mapping with 'team' and 'action'")
        teams[code], actions[code] = str(entry["team"]), str(entry["action"])
    return Policy(doc["version"], tuple(bands), frozenset(at_risk), float(threshold), teams, actions)


def _is_number(value: object) -> bool:
    # YAML reads "yes" as True, and bool is an int to Python: a flag is not a probability.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decide(
    scores: pd.DataFrame,
    features: pd.DataFrame,
    policy: Policy,
    *,
    customer_of: dict[str, str],
    model_name: str,
    model_version: str,
    as_of: str,
) -> pd.DataFrame:
    """One decision per scored order.

    Args:
        scores: index order_id; ``p_any``, ``p_<reason>`` and ``top_factors`` (JSON list of
            [feature, contribution]) as the model serves them.
        features: the feature rows the scores came from (same index), for the evidence.
        policy: the loaded policy.
        customer_of: customer id per order id.
        model_name, model_version: the model behind the scores.
        as_of: the interval label the decisions belong to.

    Returns:
        A frame with :data:`DECISION_COLUMNS`, one row per order.
    """
    import numpy as np
    import pandas as pd

    from features.evidence import evidence_for

    features = features.reindex(scores.index)
    reasons_known = [r for r in canonical.HOLD_REASONS if f"p_{r}" in scores.columns]
    risk = scores["p_any"].to_numpy(dtype=float)
    band = policy.bands_of(risk)
    at_risk = np.isin(band, list(policy.at_risk_bands))

    probs = scores[[f"p_{r}" for r in reasons_known]].to_numpy(dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked_p = np.round(np.take_along_axis(probs, order, axis=1), 4)
    ranked_names = np.array(reasons_known, dtype=object)[order]
    named = ranked_p >= policy.reason_min_probability
    if named.shape[1]:
        # An at-risk order whose reasons all stay below the naming level still gets its likeliest one.
        named[:, 0] |= at_risk
    no_reason = np.array(canonical.UNSPECIFIED_REASON, dtype=object)
    top = (
        np.where(named[:, 0], ranked_names[:, 0], no_reason)
        if named.shape[1]
        else np.full(len(risk), no_reason)
    )

    # The reasons' JSON is put together column by column: ranked, so the named ones are a prefix.
    reasons_json = np.full(len(risk), "[", dtype=object)
    for j in range(named.shape[1]):
        numbers = np.array([repr(v) for v in ranked_p[:, j].tolist()], dtype=object)
        piece = '["' + ranked_names[:, j] + '", ' + numbers + "]"
        reasons_json = reasons_json + np.where(named[:, j], piece if j == 0 else ", " + piece, "")
    reasons_json = reasons_json + "]"

    # Evidence is worked out for the orders someone will look at: the at-risk ones. Values are read
    # from whole columns, since taking a row out of a wide frame costs more than the evidence itself.
    evidence = ["[]"] * len(scores)
    if "top_factors" in scores.columns:
        factors = scores["top_factors"].to_numpy(dtype=object)
        named_factors = {
            i: [name for name, _ in json.loads(factors[i] or "[]")] for i in np.flatnonzero(at_risk)
        }
        needed = sorted({n for names in named_factors.values() for n in names} & set(features.columns))
        columns = {name: features[name].to_numpy(dtype=object) for name in needed}
        for i, names in named_factors.items():
            if names:
                row = {name: columns[name][i] for name in names if name in columns}
                evidence[i] = json.dumps(evidence_for(row, names))

    frame = pd.DataFrame(
        {
            "order_id": scores.index.astype(str),
            "customer_id": [customer_of.get(str(o)) for o in scores.index],
            "risk": np.round(risk, 6),
            "band": band,
            "at_risk": at_risk,
            "reasons": reasons_json,
            "evidence": evidence,
            "team": [policy.teams[t] if flag else None for t, flag in zip(top, at_risk, strict=True)],
            "suggested_action": [
                policy.actions[t] if flag else None for t, flag in zip(top, at_risk, strict=True)
            ],
            "model_name": model_name,
            "model_version": str(model_version),
            "policy_version": policy.version,
            "as_of": as_of,
        }
    )
    frame["decision_hash"] = _hashes(frame)
    logger.info(
        "Decided %s orders under policy %s: %s at risk", len(frame), policy.version, int(at_risk.sum())
    )
    return frame[DECISION_COLUMNS]


def _hashes(frame: pd.DataFrame) -> list[str]:
    """Hash of what the ERP would show; the as-of date is left out so an unchanged decision is not news."""
    import pandas as pd

    shown = frame[["risk", "band", "reasons", "evidence", "team", "suggested_action", "model_version"]]
    return [f"{h:016x}" for h in pd.util.hash_pandas_object(shown.astype("string"), index=False).to_numpy()]
