"""What users watch during training: metrics.jsonl, TensorBoard events, a learning curve."""

from __future__ import annotations

import json
import os
from typing import Any

LOG_FILE = "metrics.jsonl"
CURVE_FILE = "learning_curve.png"


class MetricsLog:
    """Appends {"step", "split", **metrics} records to metrics.jsonl and TensorBoard."""

    def __init__(self, output_dir: str, tensorboard: bool = True, enabled: bool = True):
        """`enabled=False` (non-leader hosts) makes every call a no-op."""
        self.enabled = enabled
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOG_FILE)
        self._writer = None
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._writer = SummaryWriter(os.path.join(output_dir, "tensorboard"))
            except ImportError:  # tensorboardX is a core dependency; stay usable without it.
                self._writer = None

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key not in ("step", "split"):
                    self._writer.add_scalar(f"{split}/{key}", value, int(step))
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(output_dir: str) -> list[dict]:
    path = os.path.join(output_dir, LOG_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_learning_curve(output_dir: str, eval_metric: str = "loss") -> str | None:
    """Writes learning_curve.png (train loss; validation `eval_metric`) and returns its path."""
    records = read_metrics(output_dir)
    train = [(r["step"], r["loss"]) for r in records if r["split"] == "train" and "loss" in r]
    valid = [
        (r["step"], r[eval_metric])
        for r in records
        if r["split"] == "validation" and eval_metric in r
    ]
    if not train and not valid:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, left = plt.subplots(figsize=(7, 4))
    if train:
        left.plot(*zip(*train), color="tab:blue", label="train loss")
    left.set_xlabel("step")
    left.set_ylabel("train loss", color="tab:blue")
    if valid:
        right = left.twinx()
        right.plot(*zip(*valid), "o-", color="tab:orange", label=f"validation {eval_metric}")
        right.set_ylabel(f"validation {eval_metric}", color="tab:orange")
    left.set_title("jaxprompt learning curve")
    fig.tight_layout()
    path = os.path.join(output_dir, CURVE_FILE)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
