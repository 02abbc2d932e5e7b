"""One ``covid-etl run`` at a time per ``$ETL_HOME``: a second one waits for the first and says so.

An exclusive ``flock`` on ``$ETL_HOME/run.lock``; the kernel releases it when the holder exits, however it
exits, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_run(etl_home: Path, *, announce=lambda message: print(message, file=sys.stderr)) -> Iterator[None]:
    etl_home.mkdir(parents=True, exist_ok=True)
    path = etl_home / "run.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            announce(f"another covid-etl run holds {path} (pid {holder}); waiting for it to finish so that "
                     "the two runs do not write the same lake and databases at once")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
