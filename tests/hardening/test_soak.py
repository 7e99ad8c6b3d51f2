"""The fast soak: benchmarks/soak.py with 16 streaming clients for 20 s against a server it starts itself (the
tiny test checkpoint, default server settings). The long one (64 clients x 5 min, the default model) is a
documented command: ``python -m benchmarks.soak``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import SoakConfig, check_loopback, run_soak


def test_fast_soak_has_no_errors_no_5xx_and_no_memory_growth(server_checkpoint: Path):
    report = run_soak(
        SoakConfig(
            clients=16,
            duration=20,
            model=str(server_checkpoint),
            warmup=5,
            abandon_rate=0.05,
            max_rss_growth_mb=64,
        )
    )
    print("\n" + report.markdown())
    kinds = report.kinds
    assert kinds["ok"] >= 16  # every client completed requests
    assert kinds["abandoned"] >= 1  # the cancel path was exercised under load
    assert set(kinds) <= {"ok", "abandoned"}, kinds
    assert report.server_5xx == 0 and report.running_at_end == 0 and report.server_log_errors == 0
    # A request whose first sampled token is EOS streams no content: it has no time to first token.
    with_text = [r for r in report.results if r.kind == "ok" and r.ttft is not None]
    assert report.tokens > 0 and len(with_text) >= 0.8 * kinds["ok"]
    assert {"start", "warm", "peak", "end"} <= set(report.rss_mb)
    assert report.ok, report.checks()


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://0.0.0.0:8000"])
def test_soak_refuses_non_loopback_targets(url: str):
    with pytest.raises(SystemExit, match="loopback"):
        check_loopback(url)
    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://[::1]:8000")
