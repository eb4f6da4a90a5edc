"""Whole commands, timed as a user would see them: start-up included."""
from __future__ import annotations

import subprocess
import tempfile
import time


def timed_command(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS of any one process in MB) of a command (under
    /usr/bin/time); a failing command stops the benchmark with its error."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", tf.name, "-f", "%M", *args],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
        return seconds, int(tf.read().split()[-1]) / 1024
