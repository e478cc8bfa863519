"""Headless Chromium for the docs' screenshot scripts: finding it and running it with a fresh profile.

Everything it is pointed at is local (a file, or a server on 127.0.0.1); the flags
turn off Chromium's own background traffic.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

#: Flags for every run: headless, no sandbox (containers), and no calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    """The Chromium binary on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(binary: str, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile; returns the finished process (stdout captured)."""
    with tempfile.TemporaryDirectory(prefix="ra-guard-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
