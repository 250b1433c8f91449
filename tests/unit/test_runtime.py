"""include.runtime: a tuned process reuses freed memory instead of faulting fresh pages in again.

Each case runs in its own Python process: the allocator's settings are process-wide and cannot be undone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.config import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")

# Allocate and free a 256 MiB array, then count the page faults of allocating and filling another.
_PROBE = """
import json, resource
import numpy as np
from include.runtime import tune_batch_memory

tuned = tune_batch_memory()
again = tune_batch_memory()
np.ones(32 * 2**20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(32 * 2**20).sum()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "again": again, "faults": faults}))
"""


def _probe(setting: str) -> dict:
    env = {**os.environ, "HOLDCAST_BATCH_MEMORY": setting}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_reuse_keeps_freed_memory_for_the_next_array():
    tuned = _probe("reuse")
    untouched = _probe("system")
    assert tuned["tuned"] and tuned["again"]
    assert not untouched["tuned"]
    # 256 MiB is 65,536 small pages or 128 huge ones: the default maps the second array afresh and
    # faults it in; the tuned process takes it from the memory the first one gave back.
    assert untouched["faults"] >= 100
    assert tuned["faults"] < 50


def test_a_bad_setting_is_refused_by_name():
    env = {**os.environ, "HOLDCAST_BATCH_MEMORY": "fast"}
    done = subprocess.run(
        [sys.executable, "-c", "from include.runtime import tune_batch_memory; tune_batch_memory()"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "HOLDCAST_BATCH_MEMORY='fast' is not valid" in done.stderr
