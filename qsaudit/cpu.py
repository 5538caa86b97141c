"""What the machine offers this process: the number of cores it may run on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / container limits), else all cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
