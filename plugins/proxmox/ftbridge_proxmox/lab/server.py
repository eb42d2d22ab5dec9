"""The lab's HTTPS front: TLS, PVE authentication, parameter checks, the envelope, faults.

Speaks ``/api2/json`` like pveproxy: ``{"data": ...}`` on success; on failure the message in
the HTTP status line (the reason phrase) and in the body, with per-parameter ``errors`` for
``400 Parameter verification failed.``. Ticket auth (``POST /access/ticket``, the
``PVEAuthCookie`` cookie, the ``CSRFPreventionToken`` header on every write) and API-token
auth (``Authorization: PVEAPIToken=user@realm!id=secret``). Every request is counted, and
recorded (method, path template, parameters, status, data) for the fidelity test.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ftbridge_proxmox.lab.api import ROUTES, Ctx
from ftbridge_proxmox.lab.params import Endpoint, endpoints, verify
from ftbridge_proxmox.lab.state import ApiError, Cluster

log = logging.getLogger(__name__)
TICKET_LIFETIME = 7200


class ApiCore:
    """Everything between a parsed HTTP request and the cluster: auth, checks, dispatch, faults."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        users: dict[str, Callable[[str], bool]],
        tokens: dict[str, str],
        latency: float = 0.0,
        record: bool = True,
    ) -> None:
        self.cluster = cluster
        self.users = users  # user@realm -> password check
        self.tokens = tokens  # user@realm!tokenid -> secret
        self.latency = latency
        self.record = record
        self.faults: dict[str, Any] = {"error_rate": 0.0, "error_status": 503, "slow": 0.0}
        self.records: list[dict[str, Any]] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.internal_errors: list[str] = []
        self._secret = os.urandom(32)
        self._rng = random.Random(0)
        self._meta_lock = threading.Lock()
        self._routes: list[tuple[Endpoint, re.Pattern[str]]] = []
        for ep in endpoints(cluster.major):
            if (ep.method, ep.path) not in ROUTES and ep.path != "/access/ticket":
                raise RuntimeError(f"lab has a parameter table but no handler for {ep.method} {ep.path}")
            rx = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(ep.path)) + "$")
            self._routes.append((ep, rx))

    # the request cycle --------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        delay = self.latency + float(self.faults["slow"])
        if delay > 0:
            time.sleep(delay)  # outside every lock: concurrent calls overlap as on a real server
        segments = [unquote(s) for s in url.path[len("/api2/json") :].split("/") if s]
        api_path = "/" + "/".join(segments)
        template = self._template_of(method, api_path)
        params: dict[str, str] = {}
        try:
            if not url.path.startswith("/api2/json/"):
                raise ApiError(501, f"Unknown format for path '{url.path}'")
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            params.update(self._body(h.headers.get("Content-Type", ""), body))
            status, data, template = 200, *self._process(method, api_path, params, h)
            message, errors = "OK", None
        except ApiError as exc:
            status, data, message, errors = exc.status, None, exc.message, exc.errors
        except Exception as exc:  # a lab bug: answer 500 and keep it for the tests to see
            log.exception("lab internal error")
            with self._meta_lock:
                self.internal_errors.append(f"{method} {url.path}: {type(exc).__name__}: {exc}")
            status, data, message, errors = 500, None, f"lab internal error: {type(exc).__name__}", None
        self._send(h, status, message, data, errors)
        with self._meta_lock:
            self.counts[(method, template)] += 1
            if self.record:
                self.records.append(
                    {
                        "version": self.cluster.version,
                        "method": method,
                        "path": template,
                        "params": params,
                        "status": status,
                        "data": data,
                        "client": h.headers.get("User-Agent", ""),
                    }
                )

    @staticmethod
    def _body(ctype: str, body: bytes) -> dict[str, str]:
        if not body:
            return {}
        if "application/json" in ctype:
            try:
                obj = json.loads(body)
            except ValueError:
                raise ApiError(400, "Parameter verification failed.", {"body": "invalid JSON"}) from None
            return {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in obj.items()}
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def _process(
        self, method: str, api_path: str, params: dict[str, str], h: BaseHTTPRequestHandler
    ) -> tuple[Any, str]:
        if method == "POST" and api_path == "/access/ticket":
            ep, _ = self._route(method, api_path)
            self._verify(ep, params)
            return self._login(params), ep.path
        user = self._authenticate(method, h)
        with self._meta_lock:
            rate = float(self.faults["error_rate"])
            if rate > 0 and self._rng.random() < rate:
                raise ApiError(int(self.faults["error_status"]), "Service temporarily unavailable (injected fault)")
        ep, match = self._route(method, api_path)
        params.update(match)
        self._verify(ep, params)
        with self.cluster.lock:
            self.cluster.tick()
            return ROUTES[(ep.method, ep.path)](self.cluster, params, Ctx(user)), ep.path

    def _route(self, method: str, api_path: str) -> tuple[Endpoint, dict[str, str]]:
        for ep, rx in self._routes:
            m = rx.match(api_path)
            if m and ep.method == method:
                return ep, m.groupdict()
        raise ApiError(501, f"Method '{method} {api_path}' not implemented")

    def _template_of(self, method: str, api_path: str) -> str:
        for ep, rx in self._routes:
            if ep.method == method and rx.match(api_path):
                return ep.path
        return api_path

    @staticmethod
    def _verify(ep: Endpoint, params: dict[str, str]) -> None:
        errors, unimplemented = verify(ep.params, params, partial=ep.partial)
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors)
        if unimplemented:
            raise ApiError(
                501,
                f"parameter(s) {', '.join(sorted(unimplemented))} of {ep.method} {ep.path} "
                "are valid in PVE but not implemented by the lab",
            )

    # authentication ----------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), "sha256").hexdigest()

    def _login(self, p: dict[str, str]) -> dict[str, Any]:
        user = p["username"]
        if "@" not in user and "realm" in p:
            user = f"{user}@{p['realm']}"
        check = self.users.get(user)
        if check is None or not check(p["password"]):
            raise ApiError(401, "authentication failure")
        stamp = f"{int(time.time()):08X}"
        ticket = f"PVE:{user}:{stamp}::{self._sign('ticket:' + user + ':' + stamp)}"
        csrf = f"{stamp}:{self._sign('csrf:' + user + ':' + stamp)}"
        return {"username": user, "ticket": ticket, "CSRFPreventionToken": csrf, "clustername": self.cluster.name}

    def _authenticate(self, method: str, h: BaseHTTPRequestHandler) -> str:
        auth = h.headers.get("Authorization", "")
        if auth.startswith("PVEAPIToken="):
            ident, _, secret = auth[len("PVEAPIToken=") :].partition("=")
            expected = self.tokens.get(ident)
            if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
                raise ApiError(401, "invalid token value!")
            return ident
        ticket = _cookie(h.headers.get("Cookie", ""), "PVEAuthCookie")
        if ticket is None:
            raise ApiError(401, "No ticket")
        parts = unquote(ticket).split(":")
        if len(parts) != 5 or parts[0] != "PVE":
            raise ApiError(401, "invalid PVE ticket")
        _, user, stamp, _, sig = parts
        if (
            not hmac.compare_digest(sig, self._sign(f"ticket:{user}:{stamp}"))
            or time.time() - int(stamp, 16) > TICKET_LIFETIME
        ):
            raise ApiError(401, "invalid PVE ticket")
        if method != "GET":
            token = h.headers.get("CSRFPreventionToken", "")
            cstamp, _, csig = token.partition(":")
            if not csig or not hmac.compare_digest(csig, self._sign(f"csrf:{user}:{cstamp}")):
                raise ApiError(401, "Permission denied - invalid csrf token")
        return user

    # answers -----------------------------------------------------------------------------------
    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, message: str, data: Any, errors: dict[str, str] | None) -> None:
        if status == 200:
            payload: dict[str, Any] = {"data": data}
        else:
            payload = {"data": None, "message": message.rstrip("\n") + "\n"}
            if errors:
                payload["errors"] = errors
        raw = json.dumps(payload).encode()
        reason = " ".join(message.split())[:400].encode("latin-1", "replace").decode("latin-1")
        h.send_response(status, reason)
        h.send_header("Content-Type", "application/json;charset=UTF-8")
        h.send_header("Content-Length", str(len(raw)))
        h.send_header("Cache-Control", "max-age=0")
        h.end_headers()
        h.wfile.write(raw)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    server: LabHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.core.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.core.handle(self, "POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.server.core.handle(self, "PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.core.handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.client_address[0], *args)


class LabHTTPServer(ThreadingHTTPServer):
    """A threaded HTTPS server; the TLS handshake runs in each connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], core: ApiCore, ctx: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.core = core
        self.ssl_context = ctx

    def finish_request(self, request: Any, client_address: Any) -> None:
        # headers and body leave in separate writes: without NODELAY, Nagle and the client's
        # delayed ACK would add ~40 ms to every keep-alive request
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # e.g. a client that does not trust the lab CA
            log.debug("TLS handshake from %s failed: %s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
