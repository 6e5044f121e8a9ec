"""Errors callers of the engine catch; torch-free, so catching them imports nothing heavy."""

from jobs.spec import RequestError  # one error for a bad request, whether the spec or the engine refuses it

__all__ = ["ContextTooLongError", "RequestError"]


class ContextTooLongError(RequestError):
    """The prompt plus the requested canvases do not fit the model's context."""
