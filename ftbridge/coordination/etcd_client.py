"""The one module that imports ``etcd3gw``: etcd's v3 API over its HTTP gRPC gateway, JSON only.

etcd3gw talks to one member; a controller is given all of them (they sit in different sites), so
:class:`EtcdClient` keeps one etcd3gw client per member and moves to the next member when one
does not answer, the way etcd's own clients balance over endpoints. Calls are serialised per
instance (requests sessions are not meant to be shared between threads); the coordinator's
keep-alive thread has an instance of its own so a slow journal write never delays a renewal.

Errors become ftbridge's in one place (:func:`_translate`): no member answering is
:class:`~ftbridge.errors.BackendUnavailable` (retryable), a refusal is
:class:`~ftbridge.errors.BackendError`, a rejected login :class:`~ftbridge.errors.AuthenticationError`.

Wire format (etcd's ``rpc.proto`` as the gateway maps it to JSON): keys and values are base64,
64-bit integers come back as strings, absent fields mean zero.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ftbridge.errors import AuthenticationError, BackendError, BackendUnavailable, ConfigError, FtbridgeError

T = TypeVar("T")


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with ``prefix`` (etcd's WithPrefix)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def compare_create(key: str, revision: int) -> dict[str, Any]:
    """A transaction comparison: the key's creation revision equals ``revision`` (0: absent)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": str(revision)}


def put_op(key: str, value: str | bytes, lease: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def range_op(key: str, end: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key)}
    if end is not None:
        body["range_end"] = b64(end)
    return {"request_range": body}


def delete_op(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def kv_from(raw: dict[str, Any]) -> KV:
    return KV(
        key=base64.b64decode(raw["key"]).decode(),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


class EtcdClient:
    """One etcd cluster, reached through any of its members' gateways."""

    def __init__(
        self,
        urls: list[str],
        *,
        timeout: float,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self._sdk = _etcd3gw()
        self.urls = list(urls)
        self._timeout = timeout
        self._ca = ca_file
        self._cert = cert
        self._user, self._password = user, password
        self._clients: dict[str, Any] = {}
        self._current = 0
        self._lock = threading.Lock()

    def _client(self, url: str) -> Any:
        c = self._clients.get(url)
        if c is None:
            parts = urlsplit(url)
            c = self._sdk.client(
                host=parts.hostname or "localhost",
                port=parts.port or 2379,
                protocol=parts.scheme,
                ca_cert=self._ca,
                cert_cert=self._cert[0] if self._cert else None,
                cert_key=self._cert[1] if self._cert else None,
                timeout=self._timeout,
                api_path="/v3/",
            )
            if self._user is not None:
                reply = c.post(c.get_url("/auth/authenticate"), json={"name": self._user, "password": self._password})
                c.session.headers["Authorization"] = reply["token"]
            self._clients[url] = c
        return c

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` on the first member that answers, starting with the last that did."""
        ex = self._sdk.exceptions

        with self._lock:
            last: Exception | None = None
            for i in range(len(self.urls)):
                n = (self._current + i) % len(self.urls)
                url = self.urls[n]
                try:
                    out = fn(self._client(url))
                except (ex.ConnectionFailedError, ex.ConnectionTimeoutError) as exc:
                    self._clients.pop(url, None)
                    last = exc
                    continue
                except ex.Etcd3Exception as exc:
                    raise _translate(exc, url) from exc
                self._current = n
                return out
            raise BackendUnavailable(
                f"etcd: no member answers ({', '.join(self.urls)}): {last}", hint="check the etcd members"
            ) from last

    # -- the RPCs ftbridge uses -----------------------------------------------------------
    def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        body = {"compare": compare, "success": success, "failure": failure or []}
        reply: dict[str, Any] = self.call(lambda c: c.post(c.get_url("/kv/txn"), json=body))
        return reply

    def range(self, key: str, end: str | None = None) -> tuple[list[KV], int]:
        """Keys and the store's revision at the read (linearizable)."""
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        reply = self.call(lambda c: c.post(c.get_url("/kv/range"), json=body))
        return [kv_from(k) for k in reply.get("kvs", [])], int(reply.get("header", {}).get("revision", 0))

    def get(self, key: str) -> KV | None:
        kvs, _ = self.range(key)
        return kvs[0] if kvs else None

    def lease_grant(self, ttl: int) -> int:
        reply = self.call(lambda c: c.post(c.get_url("/lease/grant"), json={"TTL": ttl, "ID": 0}))
        return int(reply["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """The TTL granted again; 0 or less when the lease is gone."""
        reply = self.call(lambda c: c.post(c.get_url("/lease/keepalive"), json={"ID": str(lease)}))
        return int(reply.get("result", {}).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self.call(lambda c: c.post(c.get_url("/kv/lease/revoke"), json={"ID": str(lease)}))

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.session.close()
            self._clients.clear()


def _etcd3gw() -> Any:
    try:
        import etcd3gw  # noqa: TID251 - this is the etcd client module
    except ImportError as exc:
        raise ConfigError(
            f"coordination.backend = 'etcd' needs the Python package etcd3gw ({exc})",
            hint="pip install 'ftbridge[watch]'",
        ) from exc
    return etcd3gw


def _translate(exc: Exception, url: str) -> FtbridgeError:
    text = str(exc)
    if "authentication" in text or "permission denied" in text or "invalid auth token" in text:
        return AuthenticationError(f"etcd {url}: {text}")
    return BackendError(f"etcd {url}: {text}")
