"""Turn scores into decisions with the policy file: band, reasons, evidence, team, suggested action.

The policy is validated on load: a wrong key or value names the file and the path inside it. The
decision of an order is a pure function of its scores, its feature row and the policy, so the same
inputs always give the same decision and the same ``decision_hash``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

    def band_of(self, risk: float) -> str:
        for band in self.bands:
            if risk >= band.min:
                return band.name
        return self.bands[-1].name


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
        if not isinstance(low, (int, float)) or not 0.0 <= low <= 1.0:
            raise fail(f"bands[{i}].min", "a number between 0 and 1")
        bands.append(Band(item["name"], float(low)))
    if not bands:
        raise fail("bands", "at least one band")
    if [b.min for b in bands] != sorted((b.min for b in bands), reverse=True) or bands[-1].min != 0.0:
        raise fail("bands", "bands ordered from the highest 'min' down to a last band with min 0")

    names = {b.name for b in bands}
    at_risk = doc.get("at_risk_bands") or []
    if not isinstance(at_risk, list) or not set(at_risk) <= names:
        raise fail("at_risk_bands", f"a list of band names from {sorted(names)}")
    threshold = doc.get("reason_min_probability", 0.15)
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise fail("reason_min_probability", "a number between 0 and 1")

    reasons = doc.get("reasons") or {}
    if not isinstance(reasons, dict):
        raise fail("reasons", "a mapping of reason code to team and action")
    teams, actions = {}, {}
    for code in REASON_CODES:
        entry = reasons.get(code)
        if not isinstance(entry, dict) or not entry.get("team") or not entry.get("action"):
            raise fail(f"reasons.{code}", "a mapping with 'team' and 'action'")
        teams[code], actions[code] = str(entry["team"]), str(entry["action"])
    extra = set(reasons) - set(REASON_CODES)
    if extra:
        raise fail(f"reasons.{sorted(extra)[0]}", f"a reason code from {list(REASON_CODES)}")
    return Policy(doc["version"], tuple(bands), frozenset(at_risk), float(threshold), teams, actions)


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
    import pandas as pd

    from features.evidence import evidence_for

    rows: list[dict[str, Any]] = []
    reason_cols = [f"p_{r}" for r in canonical.HOLD_REASONS if f"p_{r}" in scores.columns]
    for order_id, score in scores.iterrows():
        risk = float(score["p_any"])
        band = policy.band_of(risk)
        at_risk = band in policy.at_risk_bands
        named = sorted(
            ((col.removeprefix("p_"), float(score[col])) for col in reason_cols),
            key=lambda kv: -kv[1],
        )
        reasons = [(r, p) for r, p in named if p >= policy.reason_min_probability]
        if at_risk and not reasons and named:
            reasons = named[:1]
        top = reasons[0][0] if reasons else canonical.UNSPECIFIED_REASON
        factors = [name for name, _ in json.loads(score.get("top_factors") or "[]")]
        evidence = evidence_for(features.loc[order_id], factors) if factors else []
        row = {
            "order_id": str(order_id),
            "customer_id": customer_of.get(str(order_id)),
            "risk": round(risk, 6),
            "band": band,
            "at_risk": at_risk,
            "reasons": json.dumps([[r, round(p, 4)] for r, p in reasons]),
            "evidence": json.dumps(evidence),
            "team": policy.teams[top] if at_risk else None,
            "suggested_action": policy.actions[top] if at_risk else None,
            "model_name": model_name,
            "model_version": str(model_version),
            "policy_version": policy.version,
            "as_of": as_of,
        }
        row["decision_hash"] = _hash(row)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    logger.info(
        "Decided %s orders under policy %s: %s at risk",
        len(frame),
        policy.version,
        int(frame["at_risk"].sum()),
    )
    return frame


def _hash(row: dict[str, Any]) -> str:
    """Hash of what the ERP would show; the as-of date is left out so an unchanged decision is not news."""
    shown = {
        k: row[k]
        for k in ("risk", "band", "reasons", "evidence", "team", "suggested_action", "model_version")
    }
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]
