"""The report's figures as PNG bytes: each drawn, rendered and closed in turn.

Drawing and rendering are a report's slowest part (S1's table: 15 figures, about 2.5 s
of one core). On Linux with a spare core a forked child draws every second figure
meanwhile; the child inherits the report's frames, so nothing is pickled but the bytes
it sends back. The bytes are the same either way (Agg writes no time stamps). A child
that fails or stalls for any reason costs nothing but time: its share is drawn here.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
import time

import matplotlib.pyplot as plt

from afbench.report.model import Figure

SIDE_BY_SIDE_FROM = 4  # figures: fewer are drawn sooner than a second process starts
GRACE_S = 10.0  # beyond twice this process's own drawing time, the child is taken as stuck


def png(figure: Figure) -> bytes:
    """Draw ``figure``, render it at 100 dpi and close it (a report's figures never pile up)."""
    drawn = figure.draw()
    try:
        buffer = io.BytesIO()
        drawn.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(drawn)


def draw_pngs(chosen: list[Figure]) -> dict[str, bytes]:
    """PNG bytes of every figure of ``chosen``, by name, in its order."""
    if len(chosen) < SIDE_BY_SIDE_FROM or not _spare_core():
        return {f.name: png(f) for f in chosen}
    theirs = chosen[1::2]
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_draw_into, args=(theirs, sender, receiver), daemon=True)
    try:
        child.start()
    except (OSError, AssertionError):  # no process to spare (out of memory, a daemonic caller): all here
        receiver.close()
        sender.close()
        return {f.name: png(f) for f in chosen}
    sender.close()  # the child holds the only sending end: its death reads as EOF here
    drawn = None
    try:
        start = time.perf_counter()
        images = {f.name: png(f) for f in chosen[0::2]}
        # The child has as many figures as this process: far longer than this process took means stuck.
        if receiver.poll(GRACE_S + 2 * (time.perf_counter() - start)):
            drawn = receiver.recv()
    except EOFError:
        pass
    finally:  # whatever happened here (an error in a figure, Ctrl-C), the child does not outlive it
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if drawn is None:  # the child failed or stalled: draw its share here, where an error is reported as usual
        drawn = [png(f) for f in theirs]
    images.update(zip((f.name for f in theirs), drawn))
    return {f.name: images[f.name] for f in chosen}


def _draw_into(chosen: list[Figure], sender, receiver) -> None:
    """The child's work: every figure's bytes in one message, or None when one failed
    (the parent draws them again and reports the error once, as its own)."""
    receiver.close()  # its inherited reading end: with it open, a send to a parent gone would block forever
    try:
        _one_thread()
        sender.send([png(f) for f in chosen])
    except BaseException:  # noqa: BLE001 - any failure: the parent redraws and reports it
        sender.send(None)
    finally:
        sender.close()


def _one_thread() -> None:
    """A forked child must not enter an OpenMP parallel region its parent opened (GNU
    libgomp's team does not survive fork: a figure that ran an activation hung forever).
    At one thread torch and oneDNN run inline, as the sweep's forked workers do."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _spare_core() -> bool:
    """Fork (Linux: macOS forks badly under GUI frameworks), at least two usable cores,
    and no other thread whose locks a fork could copy held: no Python thread but this
    one, and no Ray client (its threads are native ones)."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    if multiprocessing.current_process().daemon:  # a pool's worker may not have children
        return False
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return False
    return len(os.sched_getaffinity(0)) >= 2
