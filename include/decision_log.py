"""The decision log: for every decision, what it was made from, so it can be explained and audited later.

Per decision it keeps the model version behind the ``champion`` alias when the order was scored, a
hash of the order's feature row, whether the data of the interval passed validation (and what failed
if not) and the policy version. The log lives in the warehouse table ``decision_log`` (one partition
per interval, replaced on a re-run) and as Parquet under ``lake/decision_log/as_of=<date>/``.

:func:`data_check` reads the interval's validation reports (written by ingestion under
``lake/reports/validation/as_of=<date>/<source>.json``); a failed or missing report, or a source
whose columns changed, switches auto-release off for the run (the fail-safe).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from include import config, warehouse

if TYPE_CHECKING:
    import pandas as pd

    from include.policy import Policy

logger = logging.getLogger(__name__)

LOG_TABLE = "decision_log"
MODEL_ALIAS = "champion"
LOG_COLUMNS = [
    "order_id",
    "as_of",
    "decision_hash",
    "model_name",
    "model_alias",
    "model_version",
    "feature_hash",
    "validation_passed",
    "validation_problems",
    "schema_drift",
    "policy_version",
]


@dataclass(frozen=True)
class DataCheck:
    """What the validation reports of one interval say about the data behind a scoring run."""

    as_of: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    schema_drift: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def fail_safe(self, policy: Policy) -> str | None:
        """Why auto-release must be off for this run, or None when the data is fine."""
        if not self.passed:
            return "validation failed for the data of " + self.as_of + ": " + "; ".join(self.problems[:3])
        if self.schema_drift and policy.auto_release.off_on_schema_drift:
            return "source columns changed for " + self.as_of + ": " + "; ".join(self.schema_drift[:3])
        return None


def data_check(as_of: datetime) -> DataCheck:
    """Read the interval's validation reports: did every source pass, and did any change its columns?"""
    label = warehouse.as_of_label(as_of)
    folder = warehouse.lake_path("reports", "validation", f"as_of={label}")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        return DataCheck(label, False, [f"no validation report for {label} (run holdcast_ingest for it)"])
    tolerance = config.HOLDCAST_QUARANTINE_TOLERANCE.get()
    problems, drift = [], []
    for path in paths:
        try:
            reports = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            problems.append(f"{path.name} unreadable ({err})")
            continue
        for report in reports:
            where = f"{report.get('source', path.stem)}/{report.get('table', '?')}"
            if report.get("table_failures"):
                problems.append(f"{where}: {report['table_failures'][0]}")
            share = report.get("quarantined_share")
            if share is None:
                problems.append(f"{where}: validation did not finish")
            elif share > tolerance:
                problems.append(f"{where}: {share:.1%} of rows quarantined > {tolerance:.1%}")
            changed = {k: v for k, v in ((report.get("drift") or {}).get("source") or {}).items() if v}
            if changed:
                drift.append(f"{where}: {', '.join(f'{k} {v}' for k, v in sorted(changed.items()))}")
    check = DataCheck(label, not problems, problems, drift, [str(p) for p in paths])
    log = logger.info if check.passed and not drift else logger.warning
    log("Data check for %s: passed=%s, problems=%s, schema drift=%s", label, check.passed, problems, drift)
    return check


def fail_safe(as_of: datetime, policy: Policy) -> str | None:
    """Why auto-release is off for a run on ``as_of``: its data check, or the monitor's switch; else None."""
    from include import monitoring

    why = data_check(as_of).fail_safe(policy)
    if why is None and not monitoring.auto_release_allowed():
        why = (
            "auto-release is switched off by the monitor until a person switches it on "
            "(python -m include.monitoring auto-release status)"
        )
    return why


def feature_hashes(features: pd.DataFrame) -> list[str]:
    """A hash of each feature row (values in the given column order), to prove later what was scored."""
    import pandas as pd

    return [f"{h:016x}" for h in pd.util.hash_pandas_object(features, index=False).to_numpy()]


def log_rows(decisions: pd.DataFrame, features: pd.DataFrame, check: DataCheck) -> pd.DataFrame:
    """One log row per decision; ``features`` holds the scored rows (any order, indexed by order id)."""
    rows = features.reindex(decisions["order_id"].to_numpy())
    return decisions.assign(
        model_alias=MODEL_ALIAS,
        feature_hash=feature_hashes(rows),
        validation_passed=check.passed,
        validation_problems=json.dumps(check.problems),
        schema_drift=json.dumps(check.schema_drift),
    )[LOG_COLUMNS]


def record(
    decisions: pd.DataFrame, as_of: datetime, *, features: pd.DataFrame | None = None
) -> dict[str, object]:
    """Write the interval's log to the warehouse and the lake, replacing a previous run's.

    Args:
        decisions: the interval's decisions (all shards).
        as_of: the interval.
        features: the scored feature rows (indexed by order id); default: read from the interval's
            feature snapshot, the rows the decisions were made from.

    Returns:
        Where the log is and whether the data check passed, for the run's summary.
    """
    import pandas as pd

    from features.build import FEATURE_COLUMNS

    if features is None:
        features = pd.read_parquet(
            warehouse.features_dir(as_of) / "features.parquet", columns=FEATURE_COLUMNS
        )
    check = data_check(as_of)
    frame = log_rows(decisions, features[FEATURE_COLUMNS], check)
    label = warehouse.as_of_label(as_of)
    warehouse.replace_rows(LOG_TABLE, frame, where={"as_of": label})
    path = warehouse.write_parquet(
        frame.reset_index(drop=True), warehouse.lake_path(LOG_TABLE, f"as_of={label}", "decision_log.parquet")
    )
    logger.info("Decision log for %s: %s rows at %s", label, len(frame), path)
    return {"path": str(path), "validation_passed": check.passed, "schema_drift": bool(check.schema_drift)}
