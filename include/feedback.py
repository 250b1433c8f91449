"""Analyst feedback: what a person did with an order, recorded so training and monitoring can learn from it.

Actions: ``released``, ``held``, ``contacted_customer``, ``limit_changed``, ``false_alarm``. Each record
names the order, the action, the analyst and optionally the hold reason it concerns (default: the
reason the order was routed for) and a note. Records go to the warehouse table ``feedback``; they are
never updated, a later record on the same order and reason wins.

Two ways in: ``python -m include.feedback record --order O-1 --action held --by alice`` (and ``list``),
and ``POST /holdcast/feedback`` with the same fields as JSON on the Airflow API server (the plugin in
``plugins/holdcast_plugin.py``; ``GET /holdcast/feedback?order_id=O-1`` reads them back).

How training uses them (:func:`feedback_labels`): each (order, reason) with feedback gets a label,
1 when the analyst confirmed the risk (``held``, or ``contacted_customer`` / ``limit_changed``: the
order would have been held had nobody acted), 0 when it was not real (``released``, ``false_alarm``).
Training should let these labels replace the ERP-derived ``label_<reason>`` (and ``label_any``) of the
same orders: an order someone fixed before the ERP could block it shows no hold in the ERP, which
would otherwise teach the model that the risk was not there. Every recorded feedback rewrites
``<dataset home>/feedback/labels.parquet`` (:func:`write_training_labels`): one row per order with
``label_any`` and the ``label_<reason>`` columns feedback gave, the file training lays over the
ERP's outcomes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include import canonical, warehouse

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

TABLE = "feedback"
TRAINING_LABELS_FILE = "feedback/labels.parquet"
"""Under the dataset's home: the labels training reads (see :func:`write_training_labels`)."""
ACTION_LABELS = {
    "held": 1,
    "contacted_customer": 1,
    "limit_changed": 1,
    "released": 0,
    "false_alarm": 0,
}
"""The training label each action gives the order and reason it concerns."""
ACTIONS = tuple(ACTION_LABELS)
REASONS = (*canonical.HOLD_REASONS, canonical.UNSPECIFIED_REASON)


class FeedbackError(ValueError):
    """A feedback record holdcast cannot store."""


def _table(metadata):
    from sqlalchemy import Column, Integer, String, Table, Text

    return Table(
        TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_id", String(64), nullable=False, index=True),
        Column("action", String(32), nullable=False),
        Column("reason", String(32)),
        Column("analyst", String(128), nullable=False),
        Column("note", Text),
        Column("recorded_at", String(32), nullable=False),
    )


def check_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its fields checked; :class:`FeedbackError` names the field and what was expected."""
    known = {"order_id", "action", "reason", "analyst", "note", "recorded_at"}
    unknown = sorted(set(record) - known)
    if unknown:
        raise FeedbackError(f"feedback: fields {unknown} are not known; expected only {sorted(known)}")
    for name in ("order_id", "action", "analyst"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise FeedbackError(f"feedback: '{name}' is required (a non-empty text)")
    if record["action"] not in ACTIONS:
        raise FeedbackError(
            f"feedback for {record['order_id']}: action {record['action']!r} is not one of {ACTIONS}"
        )
    reason = record.get("reason")
    if reason is not None and reason not in REASONS:
        raise FeedbackError(f"feedback for {record['order_id']}: reason {reason!r} is not one of {REASONS}")
    return {
        "order_id": record["order_id"].strip(),
        "action": record["action"],
        "reason": reason,
        "analyst": record["analyst"].strip(),
        "note": record.get("note"),
        "recorded_at": record.get("recorded_at") or datetime.now(UTC).isoformat(timespec="seconds"),
    }


def record_feedback(record: dict[str, Any]) -> dict[str, Any]:
    """Check and store one record; a missing reason is the one the order was last routed for."""
    from sqlalchemy import MetaData, inspect, text

    row = check_record(record)
    eng = warehouse.engine()
    if row["reason"] is None and inspect(eng).has_table("decisions"):
        with eng.connect() as conn:
            reasons = conn.execute(
                text("SELECT reasons FROM decisions WHERE order_id = :o ORDER BY as_of DESC LIMIT 1"),
                {"o": row["order_id"]},
            ).scalar()
        ranked = json.loads(reasons) if reasons else []
        row["reason"] = ranked[0][0] if ranked else None
    metadata = MetaData()
    table = _table(metadata)
    with eng.begin() as conn:
        metadata.create_all(conn)
        row["id"] = conn.execute(table.insert().values(**row)).inserted_primary_key[0]
    write_training_labels()
    logger.info(
        "Feedback %s on order %s (reason %s) by %s",
        row["action"],
        row["order_id"],
        row["reason"],
        row["analyst"],
    )
    return row


def read_feedback(order_id: str | None = None) -> pd.DataFrame:
    """Stored records, oldest first; only those of ``order_id`` when given."""
    import pandas as pd
    from sqlalchemy import MetaData, inspect, select

    eng = warehouse.engine()
    table = _table(MetaData())
    if not inspect(eng).has_table(TABLE):
        return pd.DataFrame(columns=[c.name for c in table.columns])
    query = select(table).order_by(table.c.id)
    if order_id is not None:
        query = query.where(table.c.order_id == order_id)
    with eng.connect() as conn:
        return pd.read_sql(query, conn)


def feedback_labels(records: pd.DataFrame | None = None) -> pd.DataFrame:
    """Training labels from analyst feedback: one row per (order_id, reason), the latest record winning.

    Args:
        records: feedback records (default: all stored ones).

    Returns:
        Columns ``order_id``, ``reason`` (a hold reason code, ``unspecified`` when none is known),
        ``label`` (1: the hold risk was real, 0: it was not) and ``action``. See the module docstring
        for how training should apply them.
    """
    records = read_feedback() if records is None else records
    if records.empty:
        import pandas as pd

        return pd.DataFrame(columns=["order_id", "reason", "label", "action"])
    latest = (
        records.assign(reason=records["reason"].fillna(canonical.UNSPECIFIED_REASON))
        .sort_values(["recorded_at", "id"] if "id" in records else ["recorded_at"])
        .drop_duplicates(["order_id", "reason"], keep="last")
    )
    out = latest.assign(label=latest["action"].map(ACTION_LABELS).astype(int))
    return (
        out[["order_id", "reason", "label", "action"]]
        .sort_values(["order_id", "reason"])
        .reset_index(drop=True)
    )


def training_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Per order: ``label_any`` (1 when feedback confirmed a reason) and ``label_<reason>`` per reason given.

    Args:
        labels: :func:`feedback_labels` output.
    """
    wide = labels.pivot_table(index="order_id", columns="reason", values="label", aggfunc="max")
    wide.columns = [f"label_{r}" for r in wide.columns]
    wide = wide.drop(columns=[f"label_{canonical.UNSPECIFIED_REASON}"], errors="ignore")
    out = wide.assign(label_any=labels.groupby("order_id")["label"].max().astype(int))
    return out[["label_any", *sorted(c for c in out.columns if c != "label_any")]]


def write_training_labels() -> str:
    """Rewrite the training-labels file from every stored record; return its path."""
    from include import config

    path = config.dataset_home() / TRAINING_LABELS_FILE
    frame = training_labels(feedback_labels())
    warehouse.write_parquet(frame, path)
    logger.info("Feedback labels for training: %s orders at %s", len(frame), path)
    return str(path)


def create_app():
    """The JSON endpoint, a FastAPI app the Airflow plugin mounts under ``/holdcast``."""
    from fastapi import Body, FastAPI, HTTPException

    app = FastAPI(title="holdcast feedback", description="Record what an analyst did with an order.")

    @app.post("/feedback", status_code=201)
    def post_feedback(record: dict = Body(...)) -> dict:  # noqa: B008 (FastAPI's way to read a JSON body)
        try:
            return record_feedback(record)
        except FeedbackError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err

    @app.get("/feedback")
    def get_feedback(order_id: str | None = None) -> list[dict]:
        frame = read_feedback(order_id)
        return json.loads(frame.to_json(orient="records"))

    @app.get("/feedback/labels")
    def get_labels() -> list[dict]:
        return json.loads(feedback_labels().to_json(orient="records"))

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record or list analyst feedback on orders.")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record what you did with an order")
    rec.add_argument("--order", required=True, help="order id")
    rec.add_argument("--action", required=True, choices=ACTIONS)
    rec.add_argument("--by", required=True, help="your name or user id")
    rec.add_argument(
        "--reason", choices=REASONS, help="the hold reason it concerns (default: the routed one)"
    )
    rec.add_argument("--note", help="free text")
    show = sub.add_parser("list", help="list recorded feedback")
    show.add_argument("--order", help="only this order")
    show.add_argument("--labels", action="store_true", help="print the training labels instead")
    args = parser.parse_args(argv)
    if args.command == "record":
        try:
            row = record_feedback(
                {
                    "order_id": args.order,
                    "action": args.action,
                    "analyst": args.by,
                    "reason": args.reason,
                    "note": args.note,
                }
            )
        except FeedbackError as err:
            print(err, file=sys.stderr)
            return 2
        print(json.dumps(row))
        return 0
    frame = feedback_labels() if args.labels else read_feedback(args.order)
    print(frame.to_csv(index=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
