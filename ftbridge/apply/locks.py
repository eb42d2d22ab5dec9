"""One run per estate at a time: an ``fcntl`` lock file per estate the run touches.

The lock belongs to the estate (what the endpoints reach), not to a state directory: it is keyed
by each endpoint's :meth:`~ftbridge.drivers.base.Driver.estate_identity` (driver and canonical
address) and lives where every process using that estate looks, so two applies with two state
directories, or two configs naming one vCenter differently, still meet:

* beside the estate when it has a place of its own (:meth:`Driver.estate_lock_path`: the sim
  keeps it beside its state file);
* otherwise in the machine-wide lock directory (:func:`lock_dir`): ``$FTBRIDGE_LOCK_DIR`` when
  set, else ``/run/lock/ftbridge`` (a sticky, world-writable directory like ``/tmp``, so every
  user of the machine meets the same locks), else a per-user directory (``$XDG_RUNTIME_DIR``, then
  the temp directory): then only the same user's runs meet. Runs on *other machines* do not see
  these locks; see README "One run per estate" for what covers them.

Locks are taken in sorted identity order (so two runs over overlapping estates cannot deadlock),
without waiting: the second run fails at once with :class:`LockBusy` naming the process that
holds the lock. The kernel drops a lock when its holder dies, SIGKILL included, so a crashed run
never leaves a stale lock behind; the files themselves stay (removing a lock file while someone
may open it is how lock files go wrong).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from ftbridge.config import Config
from ftbridge.drivers.base import Driver
from ftbridge.errors import ConfigError, LockBusy

#: how an elected watch controller's runs name themselves in a lock file
CONTROLLER_HOLDER = "ftbridge watch controller"

#: overrides the machine-wide lock directory (tests, or hosts without /run/lock)
LOCK_DIR_ENV = "FTBRIDGE_LOCK_DIR"
_SYSTEM_DIR = Path("/run/lock")


@dataclass(frozen=True)
class EstateKey:
    """One estate a run locks: the endpoint's name (for messages), its identity, its lock file."""

    endpoint: str
    identity: str
    path: Path

    @classmethod
    def of(cls, driver: Driver) -> EstateKey:
        """The key of the estate an (unopened) driver reaches."""
        identity = driver.estate_identity()
        path = driver.estate_lock_path() or lock_dir() / _file_name(identity)
        return cls(driver.endpoint, identity, path)


def estate_keys(config: Config, endpoints: Iterable[str]) -> list[EstateKey]:
    """The keys of the named endpoints' estates (drivers built, not opened: no I/O)."""
    from ftbridge.drivers.registry import load_driver

    out = []
    for name in endpoints:
        cfg = config.endpoints[name]
        out.append(EstateKey.of(load_driver(cfg.driver)(cfg, endpoint=name)))
    return out


def lock_dir() -> Path:
    """The machine-wide lock directory (see the module docstring for the order)."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env).expanduser()
    if _SYSTEM_DIR.is_dir() and os.access(_SYSTEM_DIR, os.W_OK | os.X_OK):
        return _SYSTEM_DIR / "ftbridge"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "ftbridge-locks"
    return Path(tempfile.gettempdir()) / f"ftbridge-locks-{os.getuid()}"


def _file_name(identity: str) -> str:
    """A readable, collision-free file name for an identity."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", identity)[:80] + f"-{digest}.lock"


def _make_dir(path: Path) -> None:
    """Create the lock directory; the shared one is sticky and world-writable, like /tmp."""
    if path.is_dir():
        return
    shared = path.parent == _SYSTEM_DIR
    path.mkdir(parents=True, exist_ok=True)
    if shared:
        try:
            os.chmod(path, 0o1777)
        except OSError:
            pass  # made by someone else meanwhile: theirs to set


def _readable_by_all(f: IO[str]) -> None:
    """In the machine-wide directory, a lock file must open for every user (``flock`` needs an
    open file, reading suffices), whatever the umask (ftbridge's CLI runs with 077): it holds a
    pid and a command, nothing secret. Only its owner may change the mode; others' stay as is."""
    try:
        if os.fstat(f.fileno()).st_uid == os.geteuid():
            os.fchmod(f.fileno(), 0o644)
    except OSError:
        pass


def _holder(line: str) -> str:
    """What holds a lock, from its file's line (``pid N: <holder>``, see :meth:`EstateLock._take`):
    matched from its start, as a person's run may name a plan whose path says anything."""
    pid, sep, holder = line.partition(": ")
    return holder if sep and pid.startswith("pid ") else ""


class EstateLock:
    """Exclusive locks on the given estates, held for the ``with`` block."""

    def __init__(
        self, keys: Iterable[EstateKey], *, holder: str = "ftbridge apply", yield_to: str | None = None
    ) -> None:
        """``yield_to``: a holder prefix (:data:`CONTROLLER_HOLDER`) whose lock does not stop
        this run: an elected controller goes on past a deposed one that still holds the lock
        (frozen, say), the election and the journal's fencing token deciding between them."""
        unique = {k.identity: k for k in keys}  # two endpoint names for one estate: one lock
        self.keys = [unique[i] for i in sorted(unique)]
        self.holder = holder
        self.yield_to = yield_to
        self._files: list[IO[str]] = []

    @classmethod
    def for_endpoints(
        cls, config: Config, endpoints: Iterable[str], *, holder: str = "ftbridge apply", yield_to: str | None = None
    ) -> EstateLock:
        return cls(estate_keys(config, endpoints), holder=holder, yield_to=yield_to)

    def acquire(self) -> None:
        try:
            for key in self.keys:
                f = self._take(key)
                if f is not None:
                    self._files.append(f)
        except BaseException:
            self.release()
            raise

    def _take(self, key: EstateKey) -> IO[str] | None:
        try:
            _make_dir(key.path.parent)
            try:
                f = open(key.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
                if key.path.parent.parent == _SYSTEM_DIR:
                    _readable_by_all(f)
            except PermissionError:  # another user's lock file: locking needs no write access
                f = open(key.path, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(
                f"{key.path}: cannot open the lock file of endpoint {key.endpoint}: "
                f"{exc.strerror or errno.errorcode.get(exc.errno or 0, 'error')}",
                hint=f"set ${LOCK_DIR_ENV} to a directory every ftbridge on this machine can write",
            ) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            if self.yield_to and _holder(who).startswith(self.yield_to):
                return None  # another controller's: the election decides (see __init__)
            raise LockBusy(
                f"endpoint {key.endpoint} is locked by another run ({who}); nothing was changed",
                hint=f"wait for it to finish; lock file {key.path}",
            ) from None
        if f.writable():
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}: {self.holder}\n")
            f.flush()
        return f

    def release(self) -> None:
        while self._files:
            f = self._files.pop()
            try:
                if f.writable():
                    f.seek(0)
                    f.truncate()
                fcntl.flock(f, fcntl.LOCK_UN)
            finally:
                f.close()

    def __enter__(self) -> EstateLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
