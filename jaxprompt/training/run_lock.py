"""One run per output directory: an fcntl lock that the OS releases when its process dies
(so kill -9 never leaves it stale)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket

logger = logging.getLogger(__name__)
LOCK_FILE = ".jaxprompt.lock"


class DirectoryInUse(RuntimeError):
    """Another live process holds the directory's lock."""


class HeldLock:
    """An open, flock-ed lock file; closing it (or the process ending) releases the lock."""

    def __init__(self, directory: str, what: str, name: str = LOCK_FILE, remove: bool = False):
        os.makedirs(directory, exist_ok=True)
        self.path, self.remove = os.path.join(directory, name), remove
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise DirectoryInUse(
                f"{directory} is in use by another {what} ({holder}); wait "
                "for it to finish or use another output."
            ) from None
        except OSError as e:  # a file system without locks (e.g. some network mounts)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                self.file.close()
                raise
            logger.warning("%s: file locks are not supported here; not locked.", directory)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{what}: pid {os.getpid()} on {socket.gethostname()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            self.file.seek(0)
            self.file.truncate()
            if self.remove:  # unlinked while still held: a newcomer opens a fresh file
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()

    __del__ = release


@contextlib.contextmanager
def run_lock(directory: str, what: str = "run"):
    """Holds `directory`/.jaxprompt.lock for the block; refuses at once if another process
    holds it, naming that process. Remote paths (gs://...) are not locked."""
    if "://" in directory:
        yield
        return
    lock = HeldLock(directory, what)
    try:
        yield
    finally:
        lock.release()


def output_lock(path: str, what: str) -> HeldLock | None:
    """A lock on one output file (`.<name>.lock` beside it, removed on release), held while
    the returned object lives: a second command writing the same file stops at once."""
    if "://" in path:
        return None
    directory, name = os.path.split(os.path.abspath(path))
    return HeldLock(directory, what, f".{name}.lock", remove=True)


__all__ = ["DirectoryInUse", "HeldLock", "LOCK_FILE", "output_lock", "run_lock"]
