"""Headless Chromium for the tests that check a written page: the page with a probe
script added before ``</body>`` (it writes what it finds into the title), rendered, and
the resulting DOM returned."""

import subprocess
from pathlib import Path


def flags(tmp_path: Path) -> list[str]:
    """Chromium headless, offline and with a throwaway profile under ``tmp_path``."""
    return ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]


def dump_dom(page: Path, probe: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``page`` with ``probe`` (a <script>) added, rendered; stdout is the DOM after it ran."""
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text().replace("</body>", probe + "</body>"))
    return subprocess.run(flags(tmp_path) + ["--dump-dom", checked.as_uri()], capture_output=True, text=True,
                          timeout=120)
