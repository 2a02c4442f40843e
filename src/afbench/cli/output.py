"""Where the CLI's words go: results on stdout, notes, progress and errors on stderr.

Every user-supplied string is printed as text, never as rich markup. Off a terminal
(a log file, a pipe) nothing is styled and nothing is wrapped: no escape codes, no
carriage returns. `NO_COLOR` and `TQDM_DISABLE` are honoured; `--quiet` keeps only the
verdict and the paths, `--json` prints one JSON document on stdout instead.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from dataclasses import dataclass, field


def _env_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class Output:
    quiet: bool = False  # only the verdict and the paths
    as_json: bool = False  # one JSON summary on stdout, nothing else there
    summary: dict = field(default_factory=dict)  # what --json prints

    def result(self, text: str = "", *, essential: bool = False, wrap: bool = True) -> None:
        """A result on stdout (with --quiet only the essential ones), wrapped between
        words to the terminal (80 columns off one); ``wrap=False`` for table rows."""
        if self.as_json or (self.quiet and not essential):
            return
        _write(sys.stdout, fit(text) if wrap else text)

    def note(self, text: str) -> None:
        """A note or status line on stderr (not with --quiet)."""
        if not self.quiet:
            _write(sys.stderr, fit(text))

    def finish(self, exit_status: int) -> int:
        if self.as_json:
            print(json.dumps({**self.summary, "exit_status": exit_status}, indent=2, default=str))
        return exit_status


def fit(text: str) -> str:
    """``text`` wrapped at spaces to the width, each of its lines on its own (textwrap
    alone would run a summary's lines together): a number or a name is never split."""
    width = terminal_width()
    return "\n".join(fit_line(line, width) for line in text.split("\n"))


def fit_line(line: str, width: int) -> str:
    """One line wrapped at spaces to ``width``, its continuation indented two more."""
    if len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
    return textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _write(stream, text: str) -> None:
    """Plain text, flushed: a log shows each line when it happens."""
    stream.write(text + "\n")
    stream.flush()


def error(text: str) -> None:
    """One line on stderr: red on a colour terminal, plain elsewhere."""
    prefix = "\x1b[31merror:\x1b[0m" if colour(sys.stderr) else "error:"
    _write(sys.stderr, prefix + fit(f"error: {text}")[len("error:"):])


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (afbench's, or a library's: mlflow, Ray) as the CLI's other
    notes: "warning: ..." wrapped to the terminal, without the file, line and source
    that ``warnings`` prints for a developer."""
    _write(file or sys.stderr, fit(f"warning: {message}"))


def colour(stream) -> bool:
    return stream.isatty() and not _env_set("NO_COLOR") and os.environ.get("TERM") != "dumb"


def progress_bars(no_progress: bool) -> bool:
    """Bars only on a terminal, and never with --no-progress or TQDM_DISABLE."""
    return not no_progress and sys.stderr.isatty() and not _env_set("TQDM_DISABLE")


def terminal_width() -> int:
    """The columns to fit: COLUMNS, else the terminal's, else 80 (also for a terminal
    that reports no size)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 80
    return columns if columns >= 20 else 80


class RunLines:
    """A line on stderr per finished run, for logs (where there are no bars): polls the
    results database from a thread, so it works the same under every backend. ``keys``:
    the runs this command trains (default: every run in the folder); others already
    there or merged in (a suite's stored baselines, an earlier sweep's settings) are
    neither announced nor counted."""

    def __init__(self, folder, total: int | None, say, every_s: float = 1.0, keys=None) -> None:
        self.folder, self.total, self.say, self.every_s = folder, total, say, every_s
        self.keys = None if keys is None else set(keys)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._seen: set[str] = set()
        self._done = 0

    def __enter__(self) -> "RunLines":
        self._seen = {r["key"] for r in self._finished()}  # finished before this sweep: not news
        self._done = len(self._seen if self.keys is None else self._seen & self.keys)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _finished(self) -> list[dict]:
        """The finished runs in the database, read-only; none while it does not exist yet
        (the sweep creates it only once its data and models are checked)."""
        from afbench.store.reading import StoreView, database_path

        if not database_path(self.folder).is_file():
            return []
        with StoreView(self.folder) as view:
            return [r for r in view.runs() if r["status"] in ("done", "diverged", "failed")
                    and (self.keys is None or r["key"] in self.keys)]

    def _watch(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(self.every_s)
                self._report(self._finished())
                if stopping:
                    return
        except Exception:  # the log lines are a courtesy: never let them fail the sweep
            return

    def _report(self, finished: list[dict]) -> None:
        for run in finished:
            if run["key"] in self._seen or (self.keys is not None and run["key"] not in self.keys):
                continue
            self._seen.add(run["key"])
            self._done += 1
            count = f"{self._done}/{self.total}" if self.total else f"{self._done}"
            self.say(f"[{count}] {describe_run(run)}")


def describe_run(run: dict) -> str:
    """'relu seed 3 (mlp on digits): done, test error 2.78%, 4.1 s'."""
    config, summary = run["config"], run.get("summary") or {}
    text = f"{config.get('activation')} seed {config.get('seed')} ({config.get('model')} on {config.get('dataset')}): "
    text += run["status"]
    if run["status"] == "failed":
        return text + f": {(run.get('error') or '').splitlines()[-1:] or ''}".replace("['", "").replace("']", "")
    error_rate = summary.get("error_rate")
    if error_rate is not None:
        text += f", test error {100 * error_rate:.2f}%"
    seconds = summary.get("total_train_s")
    if seconds is not None:
        text += f", {seconds:.1f} s"
    return text
