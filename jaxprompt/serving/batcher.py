"""Dynamic batching: requests of any tasks queue up and leave as one batch.

One worker thread owns the model. It waits until `max_batch` examples are queued or the
oldest has waited `max_wait_s`, takes up to `max_batch` examples in arrival order and runs
them as one batch. Policies (the benchmark compares them):

  mixed     examples of any tasks share a batch (the prompt bank makes that exact);
  per_task  a batch holds one task only: the oldest example's (one queue per task);
  single    every example runs alone (no batching).

The queue is bounded in examples: `submit` refuses work past `max_queue` (the server
answers 503), so memory never grows without bound.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable, Sequence

from jaxprompt.serving.runner import Example, ModelRunner, Result

logger = logging.getLogger(__name__)

POLICIES = ("mixed", "per_task", "single")


class QueueFull(Exception):
    """The queue cannot take the request now; retry later."""


class Pending:
    """A request's examples in flight; `on_done(results)` is called once, from the worker."""

    def __init__(self, examples: Sequence[Example], on_done: Callable[[list[Result]], None]):
        self.examples = list(examples)
        self.results: list[Result | None] = [None] * len(self.examples)
        self.remaining = len(self.examples)
        self.cancelled = False
        self._on_done = on_done

    def deliver(self, index: int, result: Result) -> None:  # worker thread only
        self.results[index] = result
        self.remaining -= 1
        if self.remaining == 0 and not self.cancelled:
            self._on_done(self.results)


@dataclasses.dataclass
class _Item:
    pending: Pending
    index: int
    enqueued: float

    @property
    def task(self) -> str:
        return self.pending.examples[self.index].task


@dataclasses.dataclass
class BatchStats:
    size: int
    tasks: int
    seconds: float


class Batcher:
    """The queue and the worker thread that turns it into batches."""

    def __init__(
        self,
        runner: ModelRunner,
        snapshot: Callable,
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        policy: str = "mixed",
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if policy not in POLICIES:
            raise ValueError(f"batching policy {policy!r}: one of {POLICIES}.")
        if max_batch > runner.max_batch:
            raise ValueError(
                f"max_batch {max_batch} is over the largest compiled batch "
                f"bucket {runner.max_batch}."
            )
        self.runner, self.snapshot = runner, snapshot
        self.max_batch = 1 if policy == "single" else max_batch
        self.max_wait_s, self.max_queue, self.policy = max_wait_s, max_queue, policy
        self.on_batch = on_batch
        self._queue: collections.deque[_Item] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="jaxprompt-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def depth(self) -> int:
        return len(self._queue)

    def submit(self, pending: Pending) -> None:
        """Queues every example of a request, or raises QueueFull and queues none."""
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if len(self._queue) + len(pending.examples) > self.max_queue:
                raise QueueFull(f"the queue holds {len(self._queue)} of {self.max_queue} examples")
            self._queue.extend(_Item(pending, i, now) for i in range(len(pending.examples)))
            self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Finishes what is queued, then ends the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _ready(self) -> bool:
        """A full batch is waiting (for per_task: of the oldest example's task)."""
        if self.policy != "per_task":
            return len(self._queue) >= self.max_batch
        head = self._queue[0].task
        return sum(item.task == head for item in self._queue) >= self.max_batch

    def _take(self) -> list[_Item]:
        while self._queue and self._queue[0].pending.cancelled:
            self._queue.popleft()
        if not self._queue:
            return []
        head = self._queue[0].task
        taken, kept = [], collections.deque()
        while self._queue and len(taken) < self.max_batch:
            item = self._queue.popleft()
            if item.pending.cancelled:
                continue
            if self.policy == "per_task" and item.task != head:
                kept.append(item)
            else:
                taken.append(item)
        kept.extend(self._queue)
        self._queue = kept
        return taken

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return  # stopping, and nothing left
                deadline = self._queue[0].enqueued + self.max_wait_s
                while not self._stopping and not self._ready():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        examples = [item.pending.examples[item.index] for item in batch]
        try:
            results = self.runner.run(self.snapshot(), examples)
        except Exception as e:  # a failed batch fails its requests, never the server
            logger.exception("batch of %d failed", len(batch))
            results = [Result("", None, f"internal error: {type(e).__name__}: {e}")] * len(batch)
        for item, result in zip(batch, results):
            item.pending.deliver(item.index, result)
        if self.on_batch is not None:
            self.on_batch(
                BatchStats(len(batch), len({e.task for e in examples}), time.perf_counter() - start)
            )


__all__ = ["Batcher", "BatchStats", "POLICIES", "Pending", "QueueFull"]
