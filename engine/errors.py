"""Errors callers of the engine catch; torch-free, so catching them imports nothing heavy."""


class RequestError(ValueError):
    """A request that cannot run (empty prompt, ids out of range, bad budget or seed): the caller's fault."""


class ContextTooLongError(RequestError):
    """The prompt plus the requested canvases do not fit the model's context."""
