"""Benchmark: how long each DAG file takes to parse, against a one-task DAG parsed the same way.

The target (README.md, Targets) is that each DAG file parses in well under a second (at most 0.5 s
here). Each file is executed in a fresh interpreter that has ``airflow.sdk`` loaded already, as the DAG
processor has, and the time of the file's own execution is taken; the best of ``repeat`` runs is kept,
since a parse can only be slowed by other work on the machine, never sped up. The reference is a
minimal DAG of one task written to a temporary file and timed the same way.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
TARGET_S = 0.5

_PROBE = """
import importlib.util, sys, time
import airflow.sdk
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
start = time.perf_counter()
spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""

_MINIMAL_DAG = """
from airflow.sdk import dag, task


@dag(schedule=None)
def minimal():
    @task
    def one():
        return 1

    one()


minimal()
"""


def parse_seconds(path: Path, repeat: int = 3) -> float:
    """Best of ``repeat`` fresh-interpreter parses of one DAG file, in seconds."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True
        )
        runs.append(float(out.stdout.split()[-1]))
    return min(runs)


def run(repeat: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="holdcast-bench-dag-") as tmp:
        minimal = Path(tmp) / "minimal_dag.py"
        minimal.write_text(_MINIMAL_DAG)
        reference = parse_seconds(minimal, repeat)
    files = {path.name: parse_seconds(path, repeat) for path in sorted(DAGS_DIR.glob("*.py"))}
    return {"reference_s": reference, "files": files}


def report(figures: dict) -> str:
    lines = [
        "DAG parse benchmark (best of 3 fresh interpreters, airflow.sdk preloaded)",
        f"  one-task reference DAG            {figures['reference_s']:7.3f} s",
    ]
    for name, seconds in figures["files"].items():
        ratio = seconds / figures["reference_s"] if figures["reference_s"] > 0 else float("inf")
        verdict = "ok" if seconds < TARGET_S else "OVER"
        lines.append(
            f"  {name:<33} {seconds:7.3f} s  {ratio:5.1f}x reference  ({verdict}, target < {TARGET_S} s)"
        )
    return "\n".join(lines)
