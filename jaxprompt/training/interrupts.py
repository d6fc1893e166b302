"""Ctrl-C and SIGTERM during training: noted, then acted on between steps.

Inside `deferred_interrupts()` the first SIGINT/SIGTERM only records itself; the training
loop polls `requested()` where its state, step and data position belong together, saves
there and raises TrainingInterrupted. A signal never lands inside XLA compilation, a step or
a checkpoint write. One that arrives after the loop's last look (the last step, the final
save) is not dropped: the run finishes its save, then TrainingInterrupted is raised as the
block exits (exit 130 / 143). A second signal stops at once (like kill -9: the last
checkpoint stays).
"""

from __future__ import annotations

import contextlib
import signal
import threading

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving; `signum` is the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def requested() -> int | None:
    """The number of the signal received inside deferred_interrupts(), or None."""
    return _received[0] if _received else None


def _handler(signum, frame):
    if _received:  # the second one: stop now
        raise KeyboardInterrupt
    _received.append(signum)
    name = signal.Signals(signum).name
    print(
        f"\n{name} received: stopping after the current step and saving (again to stop "
        "without saving).",
        flush=True,
    )


@contextlib.contextmanager
def deferred_interrupts():
    """Defers SIGINT/SIGTERM (main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        late = requested()
        _received.clear()
    # Reached only when the block finished normally: a signal it did not act on.
    if late is not None:
        name = signal.Signals(late).name
        raise TrainingInterrupted(
            f"{name} received during the last step or the final save; the run finished "
            "and its checkpoint is saved.",
            late,
        )


__all__ = ["TrainingInterrupted", "deferred_interrupts", "requested"]
