"""How a job is cancelled: one flag, set by whoever gives the job up and read by whoever runs it.

The in-process engine's job and request (its scheduler and the reference `generate` loop read the flag
between two denoising steps) and the server's Redis job (which passes it on to its worker as the cancel key)
all carry a `Cancellation`.
"""

from __future__ import annotations


class Cancellation:
    """Set once, never cleared. Setting it from the engine's thread or the event loop is safe: it is one
    attribute store, and the readers poll it between steps."""

    __slots__ = ("_is_set",)

    def __init__(self) -> None:
        self._is_set = False

    @property
    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> bool:
        """Asks the job to stop; True the first time only, so that the caller passes a cancel on once."""
        if self._is_set:
            return False
        self._is_set = True
        return True

    def __repr__(self) -> str:
        return f"Cancellation(is_set={self._is_set})"
