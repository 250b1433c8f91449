"""Helpers of the tests that run Airflow for real: processes on 127.0.0.1, reading what runs wrote.

:class:`Cluster` runs Airflow as real processes (API server, scheduler, DAG processor, workers) for the
tests that need the scheduler rather than ``airflow dags test``: the distributed run on the
CeleryExecutor and backfills. Every process starts in its own session and is stopped by its process
group, whether the test passes or not.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, text

from include import demo

STAGE_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lake_digest(root: Path) -> str:
    """One digest of every Parquet file under ``root``, paths and contents: equal lakes, equal digests."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.parquet")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(pd.read_parquet(path).to_csv().encode())
    return digest.hexdigest()


def read(url: str, query: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(text(query), conn)
    finally:
        engine.dispose()


@dataclass
class Cluster:
    """The Airflow processes of one distributed run, each in its own process group."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, args: list[str], **extra_env: str) -> None:
        log = (self.log_dir / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [demo.airflow_executable(), *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def airflow(self, *args: str) -> str:
        proc = subprocess.run(
            [demo.airflow_executable(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"airflow {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL whatever is still there after a grace period."""
        for proc in self.procs.values():
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            # Children (task supervisors, API server workers) may outlive their leader: kill the group.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_for(what: str, check, cluster: Cluster, timeout: float = STAGE_TIMEOUT_S, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        result = check()
        if result:
            return result
        time.sleep(every)
    details = "\n".join(f"--- {name}\n{cluster.tail(name, 15)}" for name in cluster.procs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{details}")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def serialized(meta: str) -> set[str]:
    """The DAGs the DAG processor has written; a DAG file that fails to import fails the test at once."""
    errors = read(meta, "SELECT filename, stacktrace FROM import_error")
    if len(errors):
        raise AssertionError("DAG import errors:\n" + "\n".join(errors["stacktrace"].str[-2000:]))
    return set(read(meta, "SELECT dag_id FROM serialized_dag")["dag_id"])


def wait_for_runs(cluster: Cluster, meta: str, dag_id: str, count: int) -> None:
    """Wait until ``dag_id`` has ``count`` successful runs; a failed run fails at once with its task's log."""

    def done() -> bool:
        runs = read(meta, f"SELECT run_id, state FROM dag_run WHERE dag_id = '{dag_id}'")
        failed = read(
            meta, "SELECT dag_id, run_id, task_id, map_index FROM task_instance WHERE state = 'failed'"
        )
        if len(failed):
            raise AssertionError(f"task instances failed:\n{failed}\n{task_logs(cluster, failed)}")
        return int((runs["state"] == "success").sum()) >= count

    wait_for(f"{count} successful run(s) of {dag_id}", done, cluster)


def task_logs(cluster: Cluster, failed: pd.DataFrame) -> str:
    logs = Path(cluster.env["AIRFLOW_HOME"]) / "logs"
    out = []
    for row in failed.itertuples():
        pattern = f"dag_id={row.dag_id}/run_id={row.run_id}/task_id={row.task_id}/**/*.log"
        for path in sorted(logs.glob(pattern)):
            out.append(f"--- {path.relative_to(logs)}\n" + "\n".join(path.read_text().splitlines()[-25:]))
    return "\n".join(out) or "(no task log found)"
