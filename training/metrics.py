"""The metrics log of a run (one JSON object per line) and its loss-curve plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends records to ``metrics.jsonl``; on resume it first drops records past the resumed step, so the
    log of a stopped-and-resumed run reads like the log of an uninterrupted one."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("", encoding="utf-8")
        elif self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(metrics_path: str | Path, out_png: str | Path, title: str = "") -> Path | None:
    """Train loss (and validation loss, if any) against step; returns the PNG path, or None without data."""
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on a training box
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="train loss")
        window = max(1, len(losses) // 40)
        if window > 1:  # one micro-batch's loss is noisy; the running mean shows the trend
            smooth = [
                sum(losses[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
                for i in range(len(losses))
            ]
            ax.plot(steps, smooth, color="tab:blue", linewidth=1.5, label=f"train loss (mean of {window})")
    if val:
        ax.plot(
            *zip(*val, strict=True), "o-", color="tab:orange", label="val loss", linewidth=1.5, markersize=3
        )
        last = val[-1][1]
        ax.set_title(f"{title}  (final val loss {last:.3f}, ppl {math.exp(min(last, 50)):.1f})")
    else:
        ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
