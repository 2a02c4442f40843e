"""Machine-wide core reservations, so concurrent afbench processes never oversubscribe.

Two processes with 2 threads each on a 2-core machine ran 20x slower than one
(measured on this project's machines). Every afbench worker therefore holds one
slot per thread while it trains: slots are files locked with flock, in a folder
shared by every afbench process of this user on this machine. A crashed process's
locks vanish with it, so nothing is ever left held.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from afbench.data.cache import cache_dir
from afbench.engine.runtime import available_cores


def slot_dir() -> Path:
    return Path(os.environ.get("AFBENCH_SLOT_DIR") or cache_dir() / "core-slots")


@contextmanager
def reserve(count: int, cores: int | None = None, poll_s: float = 0.2) -> Iterator[float]:
    """Hold ``count`` of the machine's core slots; yields the seconds spent waiting.

    All or nothing: a process that cannot get every slot it needs releases what it
    took and waits, so two processes never deadlock holding half each.
    """
    cores = cores or available_cores()
    count = max(1, min(count, cores))
    folder = slot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    while True:
        held = []
        for i in range(cores):
            handle = open(folder / f"core-{i}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            held.append(handle)
            if len(held) == count:
                break
        if len(held) == count:
            break
        for handle in held:
            handle.close()  # closing releases the lock
        time.sleep(poll_s)
    try:
        yield time.perf_counter() - start
    finally:
        for handle in held:
            handle.close()
