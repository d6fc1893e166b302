"""The training loop's settings, result and errors, and what its parts share: batches from
a position, the batch check, the validation loss."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterable, Iterator

from jaxprompt.distributed import global_batch
from jaxprompt.training.step import BATCH_KEYS, TrainState

# A source of training batches: a function from the start position (batches already
# consumed) to an iterator, or a plain re-iterable (then the first `position` are skipped).
BatchSource = Callable[[int], Iterator[dict]] | Iterable[dict]


class TrainingError(RuntimeError):
    """Training stopped; the message says why, at which step, and what was kept."""


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    steps: int = 30000  # total optimizer steps (the paper: 30k).
    eval_every: int = 1000  # validate (and checkpoint) every N steps; 0 = only at the end.
    checkpoint_every: int = 0  # 0: with every evaluation.
    log_every: int = 10  # train metrics to metrics.jsonl / TensorBoard every N steps.
    seed: int = 0  # dropout rng (data order is the data source's own seed).
    mesh_shape: tuple[int, int] | None = None  # (data, model); None: (all devices, 1).
    # (logical axis, mesh axis or None) pairs; None: jaxprompt.partitioning.DEFAULT_RULES.
    logical_axis_rules: tuple[tuple[str, str | None], ...] | None = None
    eval_metric: str = "loss"  # validation metric that picks the best checkpoint.
    eval_mode: str = "min"  # "min" or "max" for eval_metric.
    early_stopping_evals: int = 0  # stop after N evaluations without improvement; 0 = never.
    keep_latest: int = 1  # latest checkpoints kept besides the best.
    progress: bool = True  # show a progress bar.

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.eval_mode not in ("min", "max"):
            raise ValueError(f"eval_mode must be 'min' or 'max', got {self.eval_mode!r}.")


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    step: int
    best_step: int | None
    best_metric: float | None
    output_dir: str
    best_prompt_path: str | None  # best/<step>/prompt.npy (None: no prompt or no evaluation)
    stopped_early: bool
    best_deep_prompt_path: str | None = None  # best/<step>/deep_prompt.npz
    eval_metric: str = "loss"  # the validation metric best_metric is of


def batches_from(source: BatchSource, position: int) -> Iterator[dict]:
    if callable(source):
        return iter(source(position))
    return itertools.islice(iter(source), position, None)


def check_batch(batch: dict, step: int) -> None:
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise TrainingError(
            f"Batch for step {step} lacks {missing}; batches need "
            f"{list(BATCH_KEYS)} (seqio's EncDecFeatureConverter names)."
        )


def validation_loss(
    sharded, trainable, frozen, eval_batches: Callable[[], Iterable[dict]]
) -> dict[str, float]:
    """Mean token NLL over a validation source: {"loss", "tokens"}."""
    nll, tokens = 0.0, 0.0
    for batch in eval_batches():
        sums = sharded.eval_step(trainable, frozen, global_batch(batch, sharded.batch_sharding))
        nll += float(sums["nll"])
        tokens += float(sums["weight"])
    if tokens == 0:
        raise TrainingError("The validation source gave no target tokens.")
    return {"loss": nll / tokens, "tokens": tokens}


__all__ = [
    "BatchSource",
    "TrainResult",
    "TrainerConfig",
    "TrainingError",
    "batches_from",
    "check_batch",
    "validation_loss",
]
