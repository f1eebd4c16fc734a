"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import sys


def die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this child when its parent dies, however it dies
    (uvicorn re-raises SIGTERM after its shutdown, which skips ``finally`` blocks).

    Use as ``preexec_fn``. The signal follows the parent *thread* that started the child:
    start children from a thread that lives as long as they should (the main thread)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
