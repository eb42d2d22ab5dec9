"""One error hierarchy for the whole tool.

Every error a user can meet is an :class:`FtbridgeError`: it carries the exit code the CLI
uses, whether retrying may help, a hint, and the endpoint it concerns. Drivers translate their
SDK's exceptions into these in one function, chained with ``from``.

Exit codes (documented in README.md):

====  ===========================================================
0     success, nothing to report
1     findings at or above ``--fail-on``, or a partial failure
2     usage error (bad option or argument)
3     configuration error (file, key, value, secret)
4     driver error (not installed, fails to import, wrong API)
5     backend unreachable or timed out
6     authentication rejected (or TLS certificate not trusted)
7     backend refused an operation (not found, conflict, fault)
8     plan invalid: corrupt, for another estate, or stale
9     another run holds the lock on this estate
10    operation not supported by the driver
11    state storage: a file ftbridge keeps cannot be written (disk full, read-only, permission)
70    internal error (a bug: please report it with ``--debug``)
130   interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
====  ===========================================================
"""

from __future__ import annotations


class FtbridgeError(Exception):
    """Base of every error ftbridge reports to a user."""

    exit_code: int = 70
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        endpoint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.endpoint = endpoint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        """Secrets masked (:func:`ftbridge.secrets.redact`): an error's text also goes where the
        output's redacting stream does not, such as the journal and exported files."""
        from ftbridge.secrets import redact

        prefix = f"{self.endpoint}: " if self.endpoint else ""
        return redact(f"{prefix}{self.message}")

    def one_line(self) -> str:
        """The line the CLI prints: message, then the hint if any."""
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(FtbridgeError):
    """A config, policy, estate, mapping or recovery-plan file is wrong."""

    exit_code = 3


class MissingSecret(ConfigError):
    """A secret named in the config cannot be read (unset variable, missing file)."""


class DriverError(FtbridgeError):
    exit_code = 4


class DriverNotFound(DriverError):
    """No installed distribution registers this name in ``ftbridge.drivers``."""


class DriverLoadError(DriverError):
    """The driver is registered but fails to import or is written for another API."""


class UnsupportedOperation(FtbridgeError):
    """The driver (or this site, per ``probe()``) cannot do this."""

    exit_code = 10


class BackendError(FtbridgeError):
    """The platform refused or failed an operation."""

    exit_code = 7


class AuthenticationError(BackendError):
    """Login rejected, or the server's TLS certificate is not trusted."""

    exit_code = 6


class NotFound(BackendError):
    pass


class Conflict(BackendError):
    """The object is busy or in a state that forbids the operation (locked disk, FT on)."""


class BackendUnavailable(BackendError):
    """Connection refused, reset, DNS, 5xx: retrying later may help."""

    exit_code = 5
    retryable = True


class OperationTimeout(BackendError):
    exit_code = 5
    retryable = True


class PlanError(FtbridgeError):
    """A plan file is corrupt, for another estate, stale, or names an unknown action."""

    exit_code = 8


class LockBusy(FtbridgeError):
    """Another run holds the lock on this estate."""

    exit_code = 9


class StateStorageError(FtbridgeError):
    """A file ftbridge keeps (the state directory's journal, plans, locks) cannot be read or
    written: the disk is full, the file system read-only, or this user may not. The message names
    the path and which; nothing half-written is left behind (see :mod:`ftbridge.statefiles`).

    ``remedy``: what the user does about it; the hint is that, then run the command again
    (:meth:`carry_on` names another command, such as an apply's ``--resume``)."""

    exit_code = 11

    def __init__(self, message: str, *, remedy: str) -> None:
        self.remedy = remedy
        super().__init__(message, hint=f"{remedy}, then run the command again")

    def carry_on(self, command: str) -> None:
        self.hint = f"{self.remedy}, then carry on with: {command}"


class PartialFailure(FtbridgeError):
    """Raised by services only: some per-VM outcomes failed; the rest succeeded."""

    exit_code = 1


class InvariantViolation(FtbridgeError):
    """A step would leave a VM without a valid copy. Raised by the sim driver's checks."""

    exit_code = 70
