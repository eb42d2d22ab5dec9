"""The only module that imports the platform's SDK, and where its errors are translated."""

from __future__ import annotations

from ftbridge import errors
from ftbridge.drivers import require_sdk


def sdk():  # type: ignore[no-untyped-def]
    return require_sdk("example_sdk", package="example-sdk", driver="example")


def translate(exc: Exception, endpoint: str) -> errors.FtbridgeError:
    """By type and status code, never by matching message text. TODO: your SDK's types."""
    status = getattr(exc, "status", None)
    if status == 401:
        return errors.AuthenticationError("login rejected", endpoint=endpoint)
    if status == 404:
        return errors.NotFound(str(exc), endpoint=endpoint)
    if status is not None and status >= 500 or isinstance(exc, (ConnectionError, TimeoutError)):
        return errors.BackendUnavailable(str(exc), endpoint=endpoint)
    return errors.BackendError(str(exc), endpoint=endpoint)
