"""Loading a checkpoint for serving leaves no threads behind.

``tinyllm serve`` loads in a worker thread (``asyncio.to_thread``) with OMP_NUM_THREADS=1, and the load's
smoke test generates a token. When that smoke test ran on the engine's usual two threads it left an OpenMP
worker thread behind, and the engine's decode ran at half speed: its own OpenMP worker, sharing the two CPUs
with one more thread than there are, was parked on a futex between parallel regions instead of spinning
(kernel time in futex wakes and task switches). Measured on the 2-core VM, SmolLM2-135M int8 at one
stream through the server: 45-64 tok/s with the leftover thread, 119-129 without (the engine alone 110-130).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Run where the server runs: a fresh process, OMP_NUM_THREADS=1 before torch loads, the load in a worker.
PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    from concurrent.futures import ThreadPoolExecutor
    os.environ["OMP_NUM_THREADS"] = "1"
    from server.loading import load_for_serving

    def os_threads():
        return set(os.listdir("/proc/self/task"))

    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: None).result()  # the loading thread exists before the count
        before = os_threads()
        pool.submit(load_for_serving, sys.argv[1]).result()
        time.sleep(0.2)  # a thread on its way out is given time to go
        after = os_threads()
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in sorted(after - before)]
    print(json.dumps(names))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_loading_in_a_worker_thread_leaves_no_threads_behind(smollm2_dir: Path) -> None:
    # SmolLM2, not the shipped model: the shipped model's forward is too small to start a parallel region.
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(smollm2_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
