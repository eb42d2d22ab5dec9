"""The one module that talks to proxmoxer and requests.

Both are imported lazily through :func:`ftbridge.drivers.require_sdk` when a driver opens, so
loading the driver (and ftbridge's start-up) imports no SDK. Everything the SDK can raise is
turned into :mod:`ftbridge.errors` by :func:`translate`, by type and status code, chained with
``from``. Booleans go on the wire as ``1``/``0`` (proxmoxer would send ``True``, which PVE
refuses), and ``None`` values are dropped.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from ftbridge.drivers import require_sdk
from ftbridge.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    FtbridgeError,
    NotFound,
    OperationTimeout,
    UnsupportedOperation,
)
from ftbridge.secrets import remember
from ftbridge_proxmox.config import ProxmoxConfig

log = logging.getLogger(__name__)

#: statuses pveproxy uses when it cannot reach the node a call is proxied to (AnyEvent::HTTP)
NODE_UNREACHABLE = frozenset({595, 596, 597, 598, 599})
_CA_HINT = "set ca_file to the CA that signed the PVE API certificate (or, knowingly, verify_tls = false)"


class PveClient:
    """A thread-safe wrapper of one proxmoxer connection, counting every HTTP request."""

    def __init__(self, cfg: ProxmoxConfig, *, endpoint: str) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self._api: Any = None
        self._counter = itertools.count(1)
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """HTTP requests sent so far (the login included)."""
        return self._calls

    def _count(self) -> None:
        with self._lock:
            self._calls = next(self._counter)

    # lifecycle ---------------------------------------------------------------------------
    def connect(self) -> dict[str, Any]:
        """Build the proxmoxer session, log in, and return ``GET /version``."""
        proxmoxer = require_sdk("proxmoxer", package="proxmoxer", driver="proxmox")
        adapters = require_sdk("requests.adapters", package="requests", driver="proxmox")
        utils = require_sdk("requests.utils", package="requests", driver="proxmox")
        cfg = self.cfg
        host, port = cfg.server
        if cfg.ca_file is not None:
            if not cfg.ca_file.is_file():
                raise ConfigError(
                    f"endpoints.{self.endpoint}.ca_file: {cfg.ca_file} does not exist", endpoint=self.endpoint
                )
            verify: bool | str = str(cfg.ca_file)
        else:
            verify = cfg.verify_tls
            if not verify:
                log.warning(
                    "%s: TLS verification is off (verify_tls = false): the API server is not authenticated",
                    self.endpoint,
                )
            else:  # what requests would pick from the environment on every call, picked once
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        kwargs: dict[str, Any] = {
            "port": port,
            "verify_ssl": verify,
            "timeout": cfg.timeout,
            "user": cfg.user,
            "service": "PVE",
            "backend": "https",
        }
        if cfg.token is not None:
            kwargs["token_name"] = cfg.token_name
            kwargs["token_value"] = cfg.token.reveal(f"endpoints.{self.endpoint}.token")
        else:
            assert cfg.password is not None
            kwargs["password"] = cfg.password.reveal(f"endpoints.{self.endpoint}.password")
            self._count()  # proxmoxer posts /access/ticket in its constructor
        try:
            api = proxmoxer.ProxmoxAPI(host, **kwargs)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - every SDK failure is translated
            raise translate(exc, cfg=cfg, endpoint=self.endpoint, action="log in") from exc
        self._remember_tokens(api)
        # proxmoxer's session keeps 10 connections; inventory reads run `concurrency` at once
        session = api._store["session"]
        session.mount(
            "https://",
            adapters.HTTPAdapter(  # type: ignore[attr-defined]
                pool_connections=1, pool_maxsize=max(10, cfg.concurrency), max_retries=0
            ),
        )
        # requests re-reads proxy and CA settings from os.environ on every call (a third of its
        # CPU per request here); read them once instead
        session.proxies.update(utils.get_environ_proxies(cfg.base_url))  # type: ignore[attr-defined]
        session.trust_env = False
        self._api = api
        version = self.get("version")
        return dict(version or {})

    def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            try:
                api._store["session"].close()
            except Exception:  # noqa: BLE001 - close never raises
                pass

    # calls -------------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        """A read; retried ``read_retries`` times on 5xx (not when a node is unreachable)."""
        attempt = 0
        while True:
            try:
                return self._call("GET", path, params)
            except BackendUnavailable as exc:
                status = getattr(exc, "status", None)
                if attempt >= self.cfg.read_retries or status in NODE_UNREACHABLE:
                    raise
                attempt += 1
                time.sleep(0.05 * 2**attempt)

    def post(self, path: str, **data: Any) -> Any:
        return self._call("POST", path, data)

    def put(self, path: str, **data: Any) -> Any:
        return self._call("PUT", path, data)

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("DELETE", path, params)

    def _call(self, method: str, path: str, params: Mapping[str, Any]) -> Any:
        if self._api is None:
            raise BackendUnavailable("not connected (open() the driver first)", endpoint=self.endpoint)
        resource = self._api(path)
        wire = _wire(params)
        self._count()
        try:
            if method == "GET":
                return resource.get(**wire)
            if method == "POST":
                return resource.post(**wire)
            if method == "PUT":
                return resource.put(**wire)
            return resource.delete(**wire)
        except Exception as exc:  # noqa: BLE001 - every SDK failure is translated
            self._remember_tokens(self._api)  # proxmoxer renews the ticket itself, hourly
            raise translate(exc, cfg=self.cfg, endpoint=self.endpoint, action=f"{method} /{path}") from exc

    def _remember_tokens(self, api: Any) -> None:
        """A password login's ticket and CSRF token are credentials too (sent on every call)."""
        for value in api.get_tokens():  # (None, None) with an API token
            if isinstance(value, str):
                remember(value)


def _wire(params: Mapping[str, Any]) -> dict[str, Any]:
    """PVE's wire form: booleans as 1/0, no None values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = int(value) if isinstance(value, bool) else value
    return out


def _chain(exc: BaseException, depth: int = 0) -> list[BaseException]:
    """The exception, its causes, contexts and wrapped reasons (urllib3 nests them in args)."""
    if depth > 8:
        return []
    found = [exc]
    nested: list[Any] = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args]
    for item in nested:
        if isinstance(item, BaseException) and item is not exc:
            found.extend(_chain(item, depth + 1))
    return found


def _status_error(
    cls: type[FtbridgeError],
    message: str,
    *,
    status: int,
    endpoint: str,
    hint: str | None = None,
    retryable: bool | None = None,
) -> FtbridgeError:
    err = cls(message, endpoint=endpoint, hint=hint, retryable=retryable)
    err.status = status  # type: ignore[attr-defined]
    return err


def translate(exc: BaseException, *, cfg: ProxmoxConfig, endpoint: str, action: str) -> FtbridgeError:
    """The ftbridge error for anything proxmoxer or requests raised during ``action``.

    By type first (TLS, timeout, connection), then by HTTP status. PVE answers its refusals
    with a bare 500 whose reason phrase is the message: a :class:`Conflict` (exit 7), except
    ``does not exist`` (:class:`NotFound`), a held lock (a retryable :class:`Conflict`) and a
    lost quorum or a timeout (:class:`BackendUnavailable`). Other 5xx are unavailability.
    """
    if isinstance(exc, FtbridgeError):
        return exc
    proxmoxer = require_sdk("proxmoxer.core", package="proxmoxer", driver="proxmox")
    rexc = require_sdk("requests.exceptions", package="requests", driver="proxmox")
    where = cfg.base_url
    if isinstance(exc, proxmoxer.ResourceException):  # type: ignore[attr-defined]
        return _from_status(
            int(exc.status_code),
            str(exc.content or exc.status_message or ""),
            exc.errors,
            endpoint=endpoint,
            action=action,
        )
    if isinstance(exc, proxmoxer.AuthenticationError):  # type: ignore[attr-defined]
        # proxmoxer reports the login status only inside its message ("... code: 401")
        m = re.search(r"code: (\d{3})", str(exc))
        code = int(m.group(1)) if m else 401
        if code >= 500:
            return _status_error(
                BackendUnavailable, f"login to {where} failed: HTTP {code}", status=code, endpoint=endpoint
            )
        return _status_error(
            AuthenticationError,
            f"login rejected for user {cfg.user} at {where} (HTTP {code})",
            status=code,
            endpoint=endpoint,
            hint="check user, and password or token_name + token",
        )
    if isinstance(exc, rexc.SSLError):  # type: ignore[attr-defined]
        if any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc)):
            return AuthenticationError(f"TLS certificate of {where} is not trusted", endpoint=endpoint, hint=_CA_HINT)
        return BackendUnavailable(
            f"TLS handshake with {where} failed", endpoint=endpoint, hint="is this the PVE API port (8006)?"
        )
    if isinstance(exc, rexc.Timeout):  # type: ignore[attr-defined]
        return OperationTimeout(f"{where} did not answer {action} within {cfg.timeout:g}s", endpoint=endpoint)
    if isinstance(exc, rexc.ConnectionError):  # type: ignore[attr-defined]
        chain = _chain(exc)
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            reason = "connection refused"
        elif any(isinstance(e, OSError) and "Name or service not known" in str(e) for e in chain):
            reason = "host name not found"
        else:
            reason = "connection failed"
        return BackendUnavailable(
            f"cannot reach {where}: {reason}", endpoint=endpoint, hint="check host, port and that pveproxy runs"
        )
    if isinstance(exc, rexc.RequestException):  # type: ignore[attr-defined]
        return BackendUnavailable(f"{action} at {where} failed: {type(exc).__name__}", endpoint=endpoint)
    if isinstance(exc, NotImplementedError):  # proxmoxer's config_failure
        return ConfigError(f"endpoints.{endpoint}: {exc}", endpoint=endpoint)
    return BackendError(f"{action} failed: {type(exc).__name__}: {exc}", endpoint=endpoint)


def _from_status(status: int, reason: str, errors: Any, *, endpoint: str, action: str) -> FtbridgeError:
    detail = reason.strip()
    if isinstance(errors, dict) and errors:
        detail += " (" + "; ".join(f"{k}: {str(v).strip()}" for k, v in sorted(errors.items())) + ")"
    message = f"{action}: {detail or 'HTTP ' + str(status)}"
    low = reason.lower()
    if status == 401:
        return _status_error(
            AuthenticationError,
            message,
            status=status,
            endpoint=endpoint,
            hint="check user, and password or token_name + token",
        )
    if status == 403:
        return _status_error(
            AuthenticationError,
            message,
            status=status,
            endpoint=endpoint,
            hint="the user or token lacks a privilege (a token with privilege separation needs ACLs of its own)",
        )
    if status == 404:
        return _status_error(NotFound, message, status=status, endpoint=endpoint)
    if status == 501:
        return _status_error(
            UnsupportedOperation, message, status=status, endpoint=endpoint, hint="this PVE version lacks the API call"
        )
    if status in NODE_UNREACHABLE:
        return _status_error(
            BackendUnavailable,
            message,
            status=status,
            endpoint=endpoint,
            hint="a cluster node is down or unreachable from the node ftbridge talks to",
        )
    if status == 500:
        # PVE answers a refusal ("die" in the API code) with 500 and its words in the status
        # line; a few words mean something else than "refused now"
        if "does not exist" in low or "no such" in low:
            return _status_error(NotFound, message, status=status, endpoint=endpoint)
        if "locked" in low or "can't lock file" in low:
            return _status_error(Conflict, message, status=status, endpoint=endpoint, retryable=True)
        if "no quorum" in low or "got timeout" in low or "connection refused" in low:
            return _status_error(BackendUnavailable, message, status=status, endpoint=endpoint)
        return _status_error(Conflict, message, status=status, endpoint=endpoint)
    if status >= 500:
        return _status_error(BackendUnavailable, message, status=status, endpoint=endpoint)
    return _status_error(BackendError, message, status=status, endpoint=endpoint)
