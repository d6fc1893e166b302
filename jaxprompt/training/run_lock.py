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


@contextlib.contextmanager
def run_lock(directory: str, what: str = "run"):
    """Holds `directory`/.jaxprompt.lock for the block; refuses at once if another process
    holds it, naming that process. Remote paths (gs://...) are not locked."""
    if "://" in directory:
        yield
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise DirectoryInUse(f"{directory} is in use by another {what} ({holder}); wait "
                                 "for it to finish or use another output directory.") from None
        except OSError as e:  # a file system without locks (e.g. some network mounts)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            logger.warning("%s: file locks are not supported here; not locked.", directory)
        f.seek(0)
        f.truncate()
        f.write(f"{what}: pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["DirectoryInUse", "LOCK_FILE", "run_lock"]
