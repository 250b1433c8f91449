"""Run the whole main job on one machine through real Airflow: ``python -m include.demo``.

What it does, all under ``HOLDCAST_HOME`` (``.holdcast/``, git-ignored):

1. points Airflow at its own home (SQLite metadata, the project's ``dags/``) and migrates its database;
2. for ``--dataset demo``, generates the demo ERP (SQLite) and the bureau/CRM/sanctions file extracts,
   unless the same world is already there;
3. runs the DAGs for one interval with ``airflow dags test``: ingest -> features -> train -> score ->
   notify -> credit limits (on a scheduler assets and schedules chain them; here they run in turn);
4. prints a summary: orders scored, at-risk orders by reason, the model version behind ``champion``,
   and where the MLflow UI, the written-back statuses and the logs are.

Running it again for the same interval leaves the same state.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from include import config
from include.dag_defaults import START_DATE

logger = logging.getLogger("holdcast.demo")

DAG_CHAIN = (
    "holdcast_ingest",
    "holdcast_features",
    "holdcast_train",
    "holdcast_score",
    "holdcast_notify",
    "holdcast_credit_limits",
)
DEFAULT_AS_OF = {"demo": "2025-06-30", "dataco": "2018-02-01"}


def environment(home: Path, dataset: str) -> dict[str, str]:
    """The environment every Airflow command of the demo runs in."""
    airflow_home = home / "airflow"
    erp_db = home / dataset / "erp.db"
    env = dict(os.environ)
    # The demo runs on its own local MLflow store, whatever store the calling shell (or an earlier
    # in-process run: MLflow's set_tracking_uri writes the environment) points at.
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "HOLDCAST_HOME": str(home),
            "HOLDCAST_DATASET": dataset,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "AIRFLOW_CONN_HOLDCAST_ERP": json.dumps(
                {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{erp_db}"}}
            ),
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            # LightGBM's threads spin while waiting on a busy 2-core machine unless told to sleep.
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "HOLDCAST_TASK_RETRIES": os.environ.get("HOLDCAST_TASK_RETRIES", "0"),
        }
    )
    return env


# An exception line as Python prints it: "ValidationFailed: source 'bureau', ...".
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Failed|Failure)\w*: .+")


def _run(cmd: list[str], env: dict[str, str], log_file: Path) -> None:
    started = time.monotonic()
    print(f"  $ {' '.join(cmd)}", flush=True)
    with log_file.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        offset = log.tell()
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        with log_file.open() as log:
            log.seek(offset)
            output = log.read().splitlines()
        # Several tasks log at once: the cause is the exception line, wherever it fell in the output.
        causes = list(dict.fromkeys(line.strip() for line in output if _ERROR_LINE.match(line.strip())))
        shown = "\n".join(f"    {line}" for line in causes[-5:]) or "\n".join(output[-30:])
        raise SystemExit(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{shown}\nfull output: {log_file}"
        )
    print(f"    done in {time.monotonic() - started:.0f} s", flush=True)


def generate_demo_erp(home: Path, orders: int, seed: int, as_of: str, env: dict[str, str], log: Path) -> None:
    """Generate the demo ERP and file extracts unless the same world (size, seed, date) is already there."""
    marker = home / "demo" / "world.json"
    wanted = {"orders": orders, "seed": seed, "as_of": as_of}
    erp_db = home / "demo" / "erp.db"
    if marker.exists() and erp_db.exists() and json.loads(marker.read_text()) == wanted:
        print(f"  demo ERP for {wanted} already generated", flush=True)
        return
    erp_db.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "include.demo_erp",
        "--erp-url",
        f"sqlite:///{erp_db}",
        "--drop-dir",
        str(home / "demo" / "drops"),
        "--orders",
        str(orders),
        "--seed",
        str(seed),
        "--as-of",
        as_of,
    ]
    _run(cmd, env, log)
    marker.write_text(json.dumps(wanted))


def airflow_executable() -> str:
    """The ``airflow`` command of the interpreter running this module (the project's virtual environment)."""
    return str(Path(sys.executable).with_name("airflow"))


def run_chain(as_of: str, env: dict[str, str], log: Path, dags: tuple[str, ...] = DAG_CHAIN) -> None:
    airflow = airflow_executable()
    for dag_id in dags:
        _run([airflow, "dags", "test", dag_id, as_of], env, log)


def _mlflow_ui_command(home: Path) -> str:
    default = (config.PROJECT_ROOT / ".holdcast").resolve()
    return "make mlflow-ui" if home == default else f"make mlflow-ui HOLDCAST_HOME={home}"


def summary(home: Path, dataset: str, as_of: str) -> str:
    """A short human summary of the interval's decisions and the model behind them."""
    import pandas as pd
    from mlflow import MlflowClient
    from sqlalchemy import create_engine

    from include.validation import data_docs_index

    os.environ.update({"HOLDCAST_HOME": str(home), "HOLDCAST_DATASET": dataset})
    warehouse_url = config.HOLDCAST_WAREHOUSE_URL.get()
    with create_engine(warehouse_url).connect() as conn:
        decisions = pd.read_sql("SELECT * FROM decisions WHERE as_of = :a", conn, params={"a": as_of[:10]})
        quarantine = pd.read_sql(
            "SELECT table_name, rules, COUNT(*) AS n FROM quarantine WHERE batch = :a GROUP BY 1, 2",
            conn,
            params={"a": as_of[:10]},
        )
    erp_db = home / dataset / "erp.db"
    with create_engine(f"sqlite:///{erp_db}").connect() as conn:
        statuses = pd.read_sql("SELECT COUNT(*) AS n FROM holdcast_order_status", conn)["n"].iloc[0]
        changed = pd.read_sql(
            "SELECT COUNT(*) AS n FROM holdcast_writeback_audit WHERE decided_as_of = :a",
            conn,
            params={"a": as_of[:10]},
        )["n"].iloc[0]
    name = config.HOLDCAST_MODEL_NAME.get()
    client = MlflowClient(tracking_uri=config.MLFLOW_TRACKING_URI.get())
    champion = client.get_model_version_by_alias(name, "champion")
    aliases = {a: v for a, v in client.get_registered_model(name).aliases.items()}
    run = client.get_run(champion.run_id)
    at_risk = decisions[decisions["at_risk"].astype(bool)]
    reasons: dict[str, int] = {}
    for value in at_risk["reasons"]:
        parsed = json.loads(value)
        top = parsed[0][0] if parsed else "unspecified"
        reasons[top] = reasons.get(top, 0) + 1
    metrics = run.data.metrics
    lines = [
        "",
        f"holdcast main job: dataset {dataset}, interval {as_of}",
        f"  open orders scored          {len(decisions)}",
        f"  at risk (medium or high)    {len(at_risk)}"
        + "".join(f"\n    {reason:<24}  {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])),
        f"  model                       {name} version {champion.version} "
        f"(aliases: {', '.join(f'{a}=v{v}' for a, v in sorted(aliases.items()))})",
    ]
    for key, title in (
        ("any_pr_auc", "PR-AUC any hold (holdout)"),
        ("any_roc_auc", "ROC-AUC any hold (holdout)"),
        ("baseline_segment_payment_pr_auc", "PR-AUC baseline seg+pay"),
        ("baseline_segment_payment_roc_auc", "ROC-AUC baseline seg+pay"),
        ("oracle_pr_auc", "PR-AUC oracle (true p)"),
    ):
        if key in metrics:
            lines.append(f"  {title:<28}{metrics[key]:.3f}")
    baseline = metrics.get("baseline_segment_payment_pr_auc")
    if baseline is not None and metrics.get("any_pr_auc", 0.0) <= baseline:
        lines.append(
            "  NOTE: the model does not beat the segment and payment-type baseline on this holdout;"
            " treat its scores with care"
        )
    if "oracle_pr_auc" in metrics and metrics.get("oracle_pr_auc"):
        ratio = metrics["any_pr_auc"] / metrics["oracle_pr_auc"]
        lines.append(f"  {'PR-AUC model / oracle':<28}{ratio:.3f}")
    reports = config.HOLDCAST_LAKE_DIR.get() / "reports" / "validation" / f"as_of={as_of[:10]}"
    data_docs = data_docs_index(config.HOLDCAST_GX_DIR.get())
    lines += _action_lines(decisions, as_of[:10])
    lines.append(f"  rows quarantined            {int(quarantine['n'].sum())}")
    for row in quarantine.sort_values("n", ascending=False).head(5).itertuples():
        lines.append(f"    {row.table_name}: {row.rules}  {row.n}")
    lines += [
        f"  ERP status table            {statuses} orders in holdcast_order_status of {erp_db}"
        f" ({changed} written for this interval, the rest unchanged since)",
        f"  decisions and quarantine    {warehouse_url}",
        f"  validation reports          {reports}",
        f"  data docs (open in browser) {data_docs}",
        f"  Airflow logs                {home / 'airflow' / 'logs'}",
        f"  MLflow store                {config.MLFLOW_TRACKING_URI.get()}",
        f"  open the MLflow UI with     {_mlflow_ui_command(home)}   (then http://127.0.0.1:5000)",
        "",
    ]
    return "\n".join(lines)


def _action_lines(decisions, label: str) -> list[str]:
    """Decisions per team, the outbox, and the credit-limit recommendations of the interval."""
    import pandas as pd
    from sqlalchemy import create_engine, inspect

    at_risk = decisions[decisions["at_risk"].astype(bool)]
    teams = at_risk["team"].value_counts()
    lines = [f"  at risk by team             {', '.join(f'{t} {n}' for t, n in teams.items()) or 'none'}"]
    if "auto_release" in decisions.columns:
        lines.append(f"  auto-release candidates     {int(decisions['auto_release'].astype(bool).sum())}")
    outbox = config.HOLDCAST_OUTBOX_DIR.get() / label
    index = outbox / "index.json"
    if index.exists():
        sent = json.loads(index.read_text())
        lines.append(
            f"  outbox (team messages)      {outbox}  ({len(sent['messages'])} messages, "
            f"{sent['customer_drafts']} customer drafts)"
        )
    engine = create_engine(config.HOLDCAST_WAREHOUSE_URL.get())
    if inspect(engine).has_table("credit_limit_recommendations"):
        with engine.connect() as conn:
            limits = pd.read_sql(
                "SELECT decision, COUNT(*) AS n, SUM(change) AS change FROM credit_limit_recommendations "
                "WHERE as_of = :a GROUP BY 1 ORDER BY 1",
                conn,
                params={"a": label},
            )
        lines.append(
            "  limit recommendations       "
            + ", ".join(f"{r.decision} {r.n} ({r.change:+,.0f})" for r in limits.itertuples())
        )
        queue = config.HOLDCAST_OUTBOX_DIR.get() / "credit_limit_review" / f"{label}.csv"
        lines.append(f"  limit review queue          {queue}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DEFAULT_AS_OF), default="demo")
    parser.add_argument("--as-of", help="interval end (YYYY-MM-DD); default: the dataset's own")
    parser.add_argument("--orders", type=int, default=25_000, help="demo world size in orders")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--airflow",
        nargs=argparse.REMAINDER,
        help="run this airflow command in the demo's environment instead (e.g. --airflow dags list)",
    )
    args = parser.parse_args(argv)
    if args.airflow:
        env = environment(config.HOLDCAST_HOME.get().resolve(), args.dataset)
        return subprocess.run([airflow_executable(), *args.airflow], env=env, check=False).returncode

    home = config.HOLDCAST_HOME.get().resolve()
    home.mkdir(parents=True, exist_ok=True)
    as_of = args.as_of or DEFAULT_AS_OF[args.dataset]
    if datetime.fromisoformat(as_of).replace(tzinfo=UTC) < START_DATE:
        parser.error(
            f"--as-of {as_of} is before the DAGs' start date {START_DATE:%Y-%m-%d}: "
            "Airflow would skip every task"
        )
    env = environment(home, args.dataset)
    log = home / f"demo-{args.dataset}.log"
    started = time.monotonic()
    print(f"holdcast demo: dataset {args.dataset}, interval {as_of}, home {home} (full output: {log})")
    _run([airflow_executable(), "db", "migrate"], env, log)
    if args.dataset == "demo":
        generate_demo_erp(home, args.orders, args.seed, as_of, env, log)
    run_chain(as_of, env, log)
    print(summary(home, args.dataset, as_of))
    print(f"finished in {time.monotonic() - started:.0f} s at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
