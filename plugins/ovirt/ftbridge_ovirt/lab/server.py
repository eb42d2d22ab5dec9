"""The lab's HTTP face: the engine's REST API and SSO as ovirtsdk4 speaks to them.

Routes ``/ovirt-engine/sso/oauth/token`` (password grant, JSON), ``/ovirt-engine/services/
sso-logout``, and under ``/ovirt-engine/api`` the collections, entities and actions the driver
uses, with ``follow``, ``search`` and ``correlation_id``. Bodies are XML (ElementTree in,
:mod:`.render` out). Injected slowness and 5xx answers happen before the engine's lock is taken,
so a slow call does not stall the others. Every request is counted.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ftbridge_ovirt.lab import render as R
from ftbridge_ovirt.lab.engine import Fault, LabEngine, conflict
from ftbridge_ovirt.lab.model import Attachment, Registration

API = "/ovirt-engine/api"
TOKEN = "/ovirt-engine/sso/oauth/token"
LOGOUT = "/ovirt-engine/services/sso-logout"


class Stats:
    """Requests seen, by kind: the bench prints these."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.by_route: Counter[str] = Counter()

    def count(self, route: str) -> None:
        with self.lock:
            self.total += 1
            self.by_route[route] += 1

    def reset(self) -> None:
        with self.lock:
            self.total = 0
            self.by_route.clear()


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        addr: tuple[str, int],
        engine: LabEngine,
        *,
        user: str,
        password: str,
        stats: Stats,
        tls: ssl.SSLContext | None,
        admin: bool = True,
    ) -> None:
        super().__init__(addr, Handler)
        self.engine = engine
        self.user = user
        self.password = password
        #: False: a user without the engine's admin roles; its queries must be filtered
        self.admin = admin
        self.stats = stats
        self.tokens: set[str] = set()
        self.tls = tls

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-request is not the lab's problem; tests read state

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms a call
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


# search ----------------------------------------------------------------------------------
#: the last path segment of the actions the lab serves (their faults come inside <action>)
ACTIONS = frozenset({"start", "stop", "shutdown", "move", "copy", "fence", "register", "deactivate", "iscsilogin"})
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_CLAUSE = re.compile(r"^\s*([a-z_.]+)\s*(!=|=)\s*(.*?)\s*$", re.IGNORECASE)


def _clauses(text: str, reason: str) -> list[tuple[str, bool, str]]:
    """``(field, is "=", value)`` per clause of ``k=v and k2!=v*``; a clause that does not parse
    is refused (400, ``reason``)."""
    out = []
    for part in _AND.split(text.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise Fault(400, reason, f"Invalid search query: {text!r}")
        out.append((m.group(1).lower(), m.group(2) == "=", m.group(3).strip('"')))
    return out


def search_filter(
    text: str | None, fields: Callable[[Any], dict[str, str | None]], known: frozenset[str]
) -> Callable[[Any], bool]:
    """A predicate for the engine's search syntax: ``k=v and k2!=v*`` (case-insensitive, ``*``)."""
    if not text or not text.strip():
        return lambda obj: True
    clauses = []
    for key, positive, val in _clauses(text, "Bad Request"):
        if key not in known:
            raise Fault(
                400, "Bad Request", f"Invalid search query: unknown field {key!r} (known: {', '.join(sorted(known))})"
            )
        clauses.append((key, positive, val.lower()))

    def pred(obj: Any) -> bool:
        f = fields(obj)
        return all(fnmatch.fnmatchcase((f.get(key) or "").lower(), val) == positive for key, positive, val in clauses)

    return pred


#: bll ``QueriesCommandBase.java``: what a query the caller may not run answers (the REST API's
#: fault detail, under the reason "Operation Failed")
INSUFFICIENT_PERMISSIONS = "Query execution failed due to insufficient permissions."

#: restapi ``invocation/CurrentFilter.java``: what the API keeps of a correlation id
_NOT_IN_CORRELATION_ID = re.compile(r"[^0-9a-zA-Z_-]+")
CORRELATION_ID_MAX = 36


def correlation_id(header: str | None, param: str | None) -> str:
    """The correlation id a request's commands run under, as the engine's ``CurrentFilter`` makes
    it: the ``Correlation-Id`` header, else the ``correlation_id`` parameter, each stripped of
    what is not ``[0-9a-zA-Z_-]`` and cut to 36 characters; a random UUID when neither is left."""
    for given in (header, param):
        kept = _NOT_IN_CORRELATION_ID.sub("", given or "")
        if kept:
            return kept[:CORRELATION_ID_MAX]
    return str(uuid.uuid4())


def job_filter(text: str | None) -> Callable[[Any], bool]:
    """The jobs collection's search, as the engine's: one field, ``correlation_id``, compared by
    ``=`` or ``!=`` to its exact value. searchbackend ``JobConditionFieldAutoCompleter.java`` types
    the field ``UUID``, so ``SyntaxChecker.buildCustomizedValue`` turns no ``*`` into a wildcard
    and ``buildCustomizedRelation`` keeps ``=`` (no LIKE): ``*`` is a character like any other, and
    the comparison is PostgreSQL's ``=`` (case-sensitive). Any other field the engine refuses."""
    if not text or not text.strip():
        return lambda job: True
    clauses = []
    for key, positive, val in _clauses(text, "Operation Failed"):
        if key != "correlation_id":
            raise Fault(
                400,
                "Operation Failed",
                f"Invalid search query: jobs have no search field {key!r} (only correlation_id)",
            )
        clauses.append((positive, val))
    return lambda job: all((job.correlation_id == val) == positive for positive, val in clauses)


def event_filter(text: str | None, *, case_sensitive: bool) -> Callable[[Any], bool]:
    """The events collection's search on ``correlation_id``, as the engine's: a ``String`` field
    (searchbackend ``AuditLogConditionFieldAutoCompleter.java``), so ``*`` is a wildcard (LIKE) and
    the match is case-sensitive unless ``case_sensitive=false`` (ILIKE). The engine knows more
    fields (severity, time, vm names...); the lab answers this one and refuses the rest."""
    if not text or not text.strip():
        return lambda ev: True
    clauses = []
    for key, positive, val in _clauses(text, "Operation Failed"):
        if key != "correlation_id":
            raise Fault(400, "Bad Request", f"the lab searches events by correlation_id only, not {key!r}")
        clauses.append((positive, val if case_sensitive else val.lower()))

    def pred(ev: Any) -> bool:
        got = ev.correlation_id or ""
        got = got if case_sensitive else got.lower()
        return all(fnmatch.fnmatchcase(got, val) == positive for positive, val in clauses)

    return pred


def _xml(body: bytes, root: str) -> ET.Element:
    try:
        el = ET.fromstring(body or b"<none/>")
    except ET.ParseError as exc:
        raise Fault(400, "Bad Request", f"Request syntactically incorrect: {exc}") from None
    if el.tag != root:
        raise Fault(400, "Bad Request", f"expected a <{root}> element, got <{el.tag}>")
    return el


def _bool(el: ET.Element | None, path: str) -> bool | None:
    x = el.find(path) if el is not None else None
    return None if x is None or x.text is None else x.text.strip().lower() == "true"


def _text(el: ET.Element | None, path: str) -> str | None:
    x = el.find(path) if el is not None else None
    return None if x is None else (x.text or "")


def _id(el: ET.Element | None, path: str) -> str | None:
    x = el.find(path) if el is not None else None
    return None if x is None else x.get("id")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LabHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counts, not logs
        pass

    def setup(self) -> None:
        super().setup()
        self.tls_failed = False
        if self.server.tls is not None:
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.tls_failed = True  # e.g. the client did not trust our CA: nothing to answer

    def handle(self) -> None:
        if not self.tls_failed:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass

    # plumbing ----------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, ctype: str = "application/xml;charset=UTF-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _fault(self, f: Fault, *, action: bool = False) -> None:
        body = R.action_fault(f.reason, f.detail) if action else R.fault(f.reason, f.detail)
        self._send(f.code, R.document(body))

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        srv = self.server
        if url.path == TOKEN and method == "POST":
            srv.stats.count("sso-token")
            return self._token(body)
        if url.path == LOGOUT and method == "POST":
            srv.stats.count("sso-logout")
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            srv.tokens.discard(form.get("token", ""))
            return self._send(200, b"{}", "application/json")
        if not (url.path == API or url.path.startswith(API + "/")):
            srv.stats.count("other")
            return self._send(404, b"<html><body>Not Found</body></html>", "text/html")
        segs = [s for s in url.path[len(API) :].split("/") if s]
        route = f"{method} /" + "/".join("{id}" if len(s) == 36 and s.count("-") == 4 else s for s in segs)
        srv.stats.count(route)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in srv.tokens:
            return self._send(401, R.document(R.fault("Unauthorized", "Authentication required")))
        eng = srv.engine
        faults = eng.faults
        if faults["slow"]:
            time.sleep(float(faults["slow"]))
        if faults["error_rate"]:
            with eng.lock:
                roll = eng.rng.random()
            if roll < float(faults["error_rate"]):
                return self._send(503, R.document(R.fault("Service Unavailable", "injected engine failure")))
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        is_action = method == "POST" and segs[-1:] != [] and segs[-1] in ACTIONS
        # BaseBackendResource.isFiltered + QueriesCommandBase.validatePermissions: a non-admin
        # user's unfiltered query runs as an admin query and fails (ENGINE_API_FILTER_BY_DEFAULT off)
        filtered = (self.headers.get("Filter") or "").strip().lower() == "true"
        if method == "GET" and not srv.admin and not filtered:
            return self._send(400, R.document(R.fault("Operation Failed", INSUFFICIENT_PERMISSIONS)))
        try:
            with eng.lock:
                eng.tick()
                corr = correlation_id(self.headers.get("Correlation-Id"), query.get("correlation_id"))
                code, xml = Routes(eng, query, filtered=filtered, corr=corr).dispatch(method, segs, body)
        except Fault as f:
            return self._fault(f, action=is_action)
        self._send(code, R.document(xml))

    def _token(self, body: bytes) -> None:
        srv = self.server
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            reply = {"error_code": "unsupported_grant_type", "error": "Grant type not supported."}
            return self._send(400, json.dumps(reply).encode(), "application/json")
        if form.get("username") != srv.user or not secrets.compare_digest(form.get("password", ""), srv.password):
            reply = {
                "error_code": "access_denied",
                "error": f"Cannot authenticate user '{form.get('username', '')}': "
                "The username or password is incorrect.",
            }
            return self._send(400, json.dumps(reply).encode(), "application/json")
        token = secrets.token_urlsafe(32)
        srv.tokens.add(token)
        reply = {
            "access_token": token,
            "scope": form.get("scope", "ovirt-app-api"),
            "token_type": "bearer",
            "exp": str(int((time.time() + 3600) * 1000)),
        }
        self._send(200, json.dumps(reply).encode(), "application/json")


class Routes:
    """One request's view of the engine; called with the engine's lock held."""

    VM_FIELDS = frozenset({"name", "id", "status", "cluster", "host", "tag", "description"})
    DISK_FIELDS = frozenset({"alias", "name", "id", "status", "storage", "description"})
    NAME_FIELDS = frozenset({"name", "id", "status"})
    VM_FOLLOW = frozenset({"disk_attachments", "disk_attachments.disk", "tags", "nics"})
    DC_FOLLOW = frozenset({"storage_domains", "clusters", "networks", "networks.vnic_profiles"})

    def __init__(self, eng: LabEngine, query: dict[str, str], *, corr: str, filtered: bool = False) -> None:
        self.eng = eng
        self.q = query
        self.corr = corr  # as the engine keeps it (:func:`correlation_id`)
        self.filtered = filtered

    def follow(self, allowed: frozenset[str] | set[str], what: str) -> set[str]:
        got = {x.strip() for x in self.q.get("follow", "").split(",") if x.strip()}
        bad = got - set(allowed)
        if bad:
            raise Fault(400, "Bad Request", f"Invalid follow: {what} has no link {sorted(bad)[0]!r}")
        return got

    def _max(self, items: list[str]) -> list[str]:
        if "max" in self.q:
            return items[: int(self.q["max"])]
        return items

    def _flag(self, name: str) -> bool:
        return self.q.get(name, "false").lower() == "true"

    def dispatch(self, method: str, segs: list[str], body: bytes) -> tuple[int, str]:
        handler = {"GET": self._get, "POST": self._post, "PUT": self._put, "DELETE": self._delete}.get(method)
        if handler is not None:
            found = handler(segs, body)
            if found is not None:
                return found
        raise Fault(404, "Not Found", f"no resource for {method} {API}/{'/'.join(segs)}")

    # reads -------------------------------------------------------------------------------
    def _get(self, segs: list[str], body: bytes) -> tuple[int, str] | None:
        eng = self.eng
        head = segs[0] if segs else ""
        if not segs:
            return 200, R.api(eng, time.time())
        if head == "datacenters":
            return self._get_dcs(segs)
        if head == "clusters":
            return self._get_named(segs, "clusters", "cluster", lambda c: R.cluster(c))
        if head == "hosts":
            return self._get_named(segs, "hosts", "host", lambda h: R.host(eng, h))
        if head == "networks":
            return self._get_named(segs, "networks", "network", lambda n: R.network(eng, n))
        if head == "vnicprofiles":
            return self._get_named(segs, "profiles", "vnic_profile", lambda p: R.vnic_profile(p), "vnic_profiles")
        if head == "templates":
            follow = self.follow({"disk_attachments", "disk_attachments.disk"}, "template")
            return self._get_named(segs, "templates", "template", lambda t: R.template(eng, t, follow))
        if head == "storagedomains":
            return self._get_domains(segs)
        if head == "vms":
            return self._get_vms(segs)
        if head == "disks":
            return self._get_disks(segs)
        if head == "jobs":
            return self._get_jobs(segs)
        if head == "events":
            return self._get_events(segs)
        return None

    def _get_dcs(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            follow = self.follow(self.DC_FOLLOW, "data_center")
            pred = search_filter(self.q.get("search"), lambda d: {"name": d.name, "id": d.id}, self.NAME_FIELDS)
            return 200, R.collection(
                "data_centers", self._max([R.data_center(eng, d, follow) for d in eng.dcs.values() if pred(d)])
            )
        dc = eng.get("dcs", segs[1], "data center")
        if len(segs) == 2:
            return 200, R.data_center(eng, dc, self.follow(self.DC_FOLLOW, "data_center"))
        if len(segs) == 3 and segs[2] == "storagedomains":
            return 200, R.collection(
                "storage_domains",
                (R.storage_domain(eng, d, dc_view=True) for d in eng.domains.values() if d.dc == dc.id),
            )
        if len(segs) == 4 and segs[2] == "storagedomains":
            d = eng.get("domains", segs[3], "storage domain")
            if d.dc != dc.id:
                raise Fault(404, "Not Found", f"storage domain {segs[3]} is not attached to {dc.name}")
            return 200, R.storage_domain(eng, d, dc_view=True)
        if len(segs) == 3 and segs[2] == "clusters":
            return 200, R.collection("clusters", (R.cluster(c) for c in eng.clusters.values() if c.dc == dc.id))
        if len(segs) == 3 and segs[2] == "networks":
            return 200, R.collection("networks", (R.network(eng, n) for n in eng.networks.values() if n.dc == dc.id))
        raise Fault(404, "Not Found", "no such data center resource")

    def _get_named(
        self, segs: list[str], table: str, tag: str, one: Callable[[Any], str], plural: str | None = None
    ) -> tuple[int, str]:
        objs = getattr(self.eng, table)
        plural = plural or table
        if len(segs) == 1:
            pred = search_filter(
                self.q.get("search"),
                lambda o: {"name": o.name, "id": o.id, "status": getattr(o, "status", None)},
                self.NAME_FIELDS,
            )
            return 200, R.collection(plural, self._max([one(o) for o in objs.values() if pred(o)]))
        if len(segs) == 2:
            return 200, one(self.eng.get(table, segs[1], tag))
        if table == "networks" and len(segs) == 3 and segs[2] == "vnicprofiles":
            net = self.eng.get(table, segs[1], tag)
            return 200, R.collection(
                "vnic_profiles", (R.vnic_profile(p) for p in self.eng.profiles.values() if p.network == net.id)
            )
        if table == "templates" and len(segs) == 3 and segs[2] == "diskattachments":
            tpl = self.eng.get(table, segs[1], tag)
            return 200, R.collection(
                "disk_attachments", (R.attachment(self.eng, tpl, a, False) for a in tpl.attachments)
            )
        raise Fault(404, "Not Found", f"no such {tag} resource")

    def _get_domains(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            pred = search_filter(
                self.q.get("search"), lambda d: {"name": d.name, "id": d.id, "status": d.status}, self.NAME_FIELDS
            )
            return 200, R.collection(
                "storage_domains",
                self._max([R.storage_domain(eng, d) for d in eng.domains.values() if d.imported and pred(d)]),
            )
        d = eng.get("domains", segs[1], "storage domain")
        if not d.imported:
            raise Fault(404, "Not Found", f"storage domain {segs[1]} not found")
        if len(segs) == 2:
            return 200, R.storage_domain(eng, d)
        if len(segs) == 3 and segs[2] in ("vms", "templates"):
            kind = segs[2][:-1]
            if self._flag("unregistered"):
                return 200, R.collection(segs[2], (R.unregistered(eng, e) for e in eng.unregistered(d.id, kind)))
            if kind == "template":
                return 200, R.collection(
                    "templates",
                    (
                        R.template(eng, t, set())
                        for t in eng.templates.values()
                        if any(eng.disks[a.disk].domain == d.id for a in t.attachments if a.disk in eng.disks)
                    ),
                )
            on = [
                v
                for v in eng.vms.values()
                if any(eng.disks.get(a.disk) and eng.disks[a.disk].domain == d.id for a in v.attachments)
            ]
            return 200, R.collection("vms", (R.vm(eng, v, set(), filtered=self.filtered) for v in on))
        if len(segs) == 3 and segs[2] == "disks":
            owners = eng.disk_owners()
            return 200, R.collection(
                "disks", (R.disk(eng, k, owners.get(k.id, [])) for k in eng.disks.values() if k.domain == d.id)
            )
        raise Fault(404, "Not Found", "no such storage domain resource")

    def _vm_fields(self, v: Any) -> dict[str, str | None]:
        eng = self.eng
        return {
            "name": v.name,
            "id": v.id,
            "status": v.status,
            "cluster": eng.clusters[v.cluster].name,
            "host": eng.hosts[v.host].name if v.host else None,
            "tag": ",".join(v.tags),
            "description": v.description,
        }

    def _get_vms(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            follow = self.follow(self.VM_FOLLOW, "vm")
            pred = search_filter(self.q.get("search"), self._vm_fields, self.VM_FIELDS)
            owners = eng.disk_owners()
            return 200, R.collection(
                "vms",
                self._max(
                    [R.vm(eng, v, follow, filtered=self.filtered, owners=owners) for v in eng.vms.values() if pred(v)]
                ),
            )
        v = eng.get("vms", segs[1], "vm")
        if len(segs) == 2:
            return 200, R.vm(eng, v, self.follow(self.VM_FOLLOW, "vm"), filtered=self.filtered)
        if segs[2] == "diskattachments":
            deep = "disk" in self.follow({"disk"}, "disk_attachment")
            if len(segs) == 3:
                return 200, R.collection("disk_attachments", (R.attachment(eng, v, a, deep) for a in v.attachments))
            a = next((a for a in v.attachments if a.disk == segs[3]), None)
            if a is None:
                raise Fault(404, "Not Found", f"disk attachment {segs[3]} not found")
            return 200, R.attachment(eng, v, a, deep)
        if segs[2] == "nics" and len(segs) == 3:
            return 200, R.collection("nics", (R.nic(v, n) for n in v.nics))
        if segs[2] == "snapshots":
            if len(segs) == 3:
                return 200, R.collection(
                    "snapshots", [R.snapshot(eng, v, None)] + [R.snapshot(eng, v, s) for s in v.snapshots]
                )
            snap = next((s for s in v.snapshots if s.id == segs[3]), None)
            if snap is None:
                raise Fault(404, "Not Found", f"snapshot {segs[3]} not found")
            if len(segs) == 4:
                return 200, R.snapshot(eng, v, snap)
            if len(segs) == 5 and segs[4] == "disks":
                return 200, R.snapshot_disks(eng, snap)
        raise Fault(404, "Not Found", "no such vm resource")

    def _get_disks(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            pred = search_filter(
                self.q.get("search"),
                lambda k: {
                    "alias": k.alias,
                    "name": k.alias,
                    "id": k.id,
                    "status": k.status,
                    "storage": eng.domains[k.domain].name if k.domain else None,
                    "description": k.description,
                },
                self.DISK_FIELDS,
            )
            owners = eng.disk_owners()
            return 200, R.collection(
                "disks", self._max([R.disk(eng, k, owners.get(k.id, [])) for k in eng.disks.values() if pred(k)])
            )
        if len(segs) == 2:
            return 200, R.disk(eng, eng.get("disks", segs[1], "disk"))
        raise Fault(404, "Not Found", "no such disk resource")

    def _get_jobs(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            if self.filtered:
                # restapi BackendJobsResource.list: a filtered caller's list runs GetAllJobs, which
                # keeps QueryType's default auth type, Admin; QueriesCommandBase.validatePermissions
                # refuses an admin query asked filtered (whoever asks), and
                # BaseBackendResource.handleError makes that a 400 "Operation Failed" fault
                raise Fault(400, "Operation Failed", INSUFFICIENT_PERMISSIONS)
            pred = job_filter(self.q.get("search"))
            # the engine's default order for jobs: start_time ASC (SearchObjectAutoCompleter, JOB)
            jobs = sorted((j for j in eng.jobs.values() if pred(j)), key=lambda j: j.start)
            return 200, R.collection("jobs", self._max([R.job(j) for j in jobs]))
        if len(segs) == 2:
            return 200, R.job(eng.get("jobs", segs[1], "job"))
        raise Fault(404, "Not Found", "no such job resource")

    def _get_events(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            # restapi BackendEventsResource: a filtered caller's list runs GetAllEventMessages (open
            # to users) and ignores the search: every event the caller may see, newest first
            search = None if self.filtered else self.q.get("search")
            pred = event_filter(search, case_sensitive=self.q.get("case_sensitive", "true") != "false")
            start = int(self.q["from"]) if self.q.get("from", "").isdigit() else 0
            # newest first: audit_log_id DESC (SearchObjectAutoCompleter, EVENT), as api-model
            # services/EventsService.java documents it
            events = [ev for ev in reversed(eng.events) if ev.index > start and pred(ev)]
            return 200, R.collection("events", self._max([R.event(ev) for ev in events]))
        if len(segs) == 2 and segs[1].isdigit() and 0 < int(segs[1]) <= len(eng.events):
            return 200, R.event(eng.events[int(segs[1]) - 1])
        raise Fault(404, "Not Found", "no such event resource")

    # changes -----------------------------------------------------------------------------
    def _answer(self, job_id: str, el: ET.Element | None, pending: bool) -> tuple[int, str]:
        """As the engine: 200 + complete, or 202 + pending when the caller asked for async."""
        asked_async = _bool(el, "async") or self.q.get("async", "").lower() == "true"
        if asked_async and pending:
            return 202, R.action("pending", job_id)
        return 200, R.action("complete", job_id)

    def _post(self, segs: list[str], body: bytes) -> tuple[int, str] | None:
        eng = self.eng
        n = len(segs)
        head = segs[0] if segs else ""
        if segs == ["vms"]:
            return self._add_vm(body)
        if segs == ["storagedomains"]:
            return self._import_domain(body)
        if n == 3 and head == "vms" and segs[2] in ("start", "stop", "shutdown"):
            return self._vm_action(segs[1], segs[2], body)
        if n == 3 and head == "vms" and segs[2] == "diskattachments":
            return self._attach(segs[1], body)
        if n == 3 and head == "vms" and segs[2] == "nics":
            return self._add_nic(segs[1], body)
        if n == 3 and head == "vms" and segs[2] == "snapshots":
            el = _xml(body, "snapshot")
            ids = {x.get("id") or "" for x in el.findall("disk_attachments/disk_attachment/disk")}
            snap = eng.create_snapshot(
                segs[1], _text(el, "description") or "", ids or None, bool(_bool(el, "persist_memorystate")), self.corr
            )
            return 201, R.snapshot(eng, eng.vms[segs[1]], snap)
        if n == 3 and head == "disks" and segs[2] in ("move", "copy"):
            return self._disk_action(segs[1], segs[2], body)
        if n == 3 and head == "hosts" and segs[2] == "iscsilogin":
            el = _xml(body, "action")
            host = eng.get("hosts", segs[1], "host")
            if host.status != "up":
                raise conflict(f"Cannot login to iSCSI target. Host {host.name} is {host.status}.")
            if not _text(el, "iscsi/address") or not _text(el, "iscsi/target"):
                raise Fault(
                    400, "Incomplete parameters", "Action [iscsi.address, iscsi.target] required for iscsiLogin"
                )
            return 200, R.action("complete")
        if n == 3 and head == "hosts" and segs[2] == "fence":
            el = _xml(body, "action")
            job = eng.fence(segs[1], (_text(el, "fence_type") or "").lower(), self.corr)
            return self._answer(job.id, el, pending=False)
        if n == 3 and head == "datacenters" and segs[2] == "storagedomains":
            sd = _id(_xml(body, "storage_domain"), ".")
            dom = eng.attach_domain(segs[1], sd or "", self.corr)
            return 201, R.storage_domain(eng, dom, dc_view=True)
        if n == 5 and head == "datacenters" and segs[2] == "storagedomains" and segs[4] == "deactivate":
            _xml(body, "action")
            eng.deactivate_domain(segs[1], segs[3], self.corr)
            return 200, R.action("complete")
        if n == 5 and head == "storagedomains" and segs[2] in ("vms", "templates") and segs[4] == "register":
            el = _xml(body, "action")
            mapping = _registration(el)
            partial = bool(_bool(el, "allow_partial_import"))
            if segs[2] == "vms":
                eng.register_vm(
                    segs[1], segs[3], _id(el, "cluster"), _text(el, "cluster/name"), mapping, partial, self.corr
                )
            else:
                eng.register_template(
                    segs[1], segs[3], _id(el, "cluster"), _text(el, "cluster/name"), mapping, partial, self.corr
                )
            return 200, R.action("complete")
        return None

    def _put(self, segs: list[str], body: bytes) -> tuple[int, str] | None:
        eng = self.eng
        n = len(segs)
        head = segs[0] if segs else ""
        if n == 2 and head == "vms":
            return self._update_vm(segs[1], body)
        if n == 2 and head == "disks":
            el = _xml(body, "disk")
            disk = eng.update_disk(segs[1], _text(el, "alias"), _text(el, "description"), self.corr)
            return 200, R.disk(eng, disk)
        if n == 4 and head == "vms" and segs[2] == "nics":
            el = _xml(body, "nic")
            nic = eng.update_nic(segs[1], segs[3], _bool(el, "plugged"), _bool(el, "linked"), _id(el, "vnic_profile"))
            return 200, R.nic(eng.vms[segs[1]], nic)
        return None

    def _delete(self, segs: list[str], body: bytes) -> tuple[int, str] | None:
        eng = self.eng
        n = len(segs)
        head = segs[0] if segs else ""
        detach_only = self._flag("detach_only")
        if n == 2 and head == "vms":
            eng.remove_vm(segs[1], detach_only, self.corr)
            return 200, R.action()
        if n == 2 and head == "disks":
            eng.remove_disk(segs[1], self.corr)
            return 200, R.action()
        if n == 4 and head == "vms" and segs[2] == "diskattachments":
            eng.detach_disk(segs[1], segs[3], detach_only, self.corr)
            return 200, R.action()
        if n == 4 and head == "vms" and segs[2] == "snapshots":
            eng.remove_snapshot(segs[1], segs[3], self.corr)
            return 200, R.action()
        if n == 4 and head == "datacenters" and segs[2] == "storagedomains":
            eng.detach_domain(segs[1], segs[3], self.corr)
            return 200, R.action()
        if n == 2 and head == "storagedomains":
            eng.remove_domain(segs[1], self._flag("destroy"), self.corr)
            return 200, R.action()
        return None

    def _disk_action(self, disk_id: str, verb: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "action")
        sd = _id(el, "storage_domain")
        if not sd:
            name = _text(el, "storage_domain/name")
            sd = next((d.id for d in self.eng.domains.values() if d.name == name), None) if name else None
        if not sd:
            raise Fault(400, "Incomplete parameters", f"Action [storageDomain.id|name] required for {verb}")
        if verb == "move":
            job = self.eng.move_disk(disk_id, sd, self.corr)
        else:
            job = self.eng.copy_disk(disk_id, sd, _text(el, "disk/alias"), self.corr)
        return self._answer(job.id, el, pending=True)

    def _vm_action(self, vm_id: str, verb: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "action")
        if verb == "start":
            job = self.eng.start_vm(vm_id, _id(el, "vm/placement_policy/hosts/host"), self.corr)
            return self._answer(job.id, el, pending=True)
        job = self.eng.stop_vm(vm_id, self.corr)
        return self._answer(job.id, el, pending=False)

    def _add_vm(self, body: bytes) -> tuple[int, str]:
        el = _xml(body, "vm")
        mem = _text(el, "memory")
        snap = _id(el, "snapshots/snapshot")
        disks: dict[str, tuple[str | None, str | None]] = {}
        for d in el.findall("disk_attachments/disk_attachment/disk"):
            if d.get("id"):
                disks[d.get("id") or ""] = (_id(d, "storage_domains/storage_domain"), _text(d, "alias"))
        vm = self.eng.add_vm(
            _text(el, "name") or "",
            _id(el, "cluster"),
            _text(el, "cluster/name"),
            _text(el, "description") or "",
            bool(_bool(el, "stateless")),
            int(mem) if mem else None,
            self.corr,
            snapshot=snap,
            disks=disks,
        )
        return (202 if snap else 201), R.vm(self.eng, vm, set())

    def _update_vm(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "vm")
        changes: dict[str, Any] = {
            "name": _text(el, "name"),
            "description": _text(el, "description"),
            "ha": _bool(el, "high_availability/enabled"),
            "cluster": _id(el, "cluster"),
            "stateless": _bool(el, "stateless"),
        }
        lease = el.find("lease")
        if lease is not None:
            changes["lease"] = _id(lease, "storage_domain")
        vm = self.eng.update_vm(vm_id, changes, self.corr)
        return 200, R.vm(self.eng, vm, set())

    def _attach(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "disk_attachment")
        disk_id = _id(el, "disk")
        if not disk_id:
            raise Fault(400, "Incomplete parameters", "DiskAttachment [disk.id] required for add")
        att = Attachment(
            disk=disk_id,
            interface=_text(el, "interface") or "virtio_scsi",
            bootable=bool(_bool(el, "bootable")),
            active=_bool(el, "active") is not False,
        )
        self.eng.attach_disk(vm_id, att, self.corr)
        return 201, R.attachment(self.eng, self.eng.vms[vm_id], att, False)

    def _add_nic(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "nic")
        plugged = _bool(el, "plugged")
        linked = _bool(el, "linked")
        nic = self.eng.add_nic(
            vm_id,
            _text(el, "name") or "nic1",
            plugged is not False,
            linked is not False,
            _id(el, "vnic_profile"),
            self.corr,
        )
        return 201, R.nic(self.eng.vms[vm_id], nic)

    def _import_domain(self, body: bytes) -> tuple[int, str]:
        el = _xml(body, "storage_domain")
        if not _bool(el, "import"):
            raise Fault(400, "Bad Request", "the lab imports existing storage domains only (import = true)")
        host = _id(el, "host")
        if not host:
            name = _text(el, "host/name")
            host = next((h.id for h in self.eng.hosts.values() if h.name == name), None) if name else None
        dom = self.eng.import_domain(
            _text(el, "name"),
            _text(el, "storage/type") or "",
            sd_id=el.get("id"),
            address=_text(el, "storage/address"),
            path=_text(el, "storage/path"),
            host_id=host,
            corr=self.corr,
        )
        return 201, R.storage_domain(self.eng, dom)


def _registration(el: ET.Element) -> Registration:
    """``registration_configuration`` of a register action, as the SDK writes it."""
    reg = Registration()
    conf = el.find("registration_configuration")
    if conf is None:
        return reg
    for m in conf.findall("cluster_mappings/registration_cluster_mapping"):
        src, dst = _text(m, "from/name"), _text(m, "to/name")
        if src and dst:
            reg.clusters[src] = dst
    for m in conf.findall("vnic_profile_mappings/registration_vnic_profile_mapping"):
        key = (_text(m, "from/network/name") or "", _text(m, "from/name") or "")
        reg.profiles[key] = _id(m, "to") or ""
    for m in conf.findall("lun_mappings/registration_lun_mapping"):
        src = _id(m, "from/lun_storage/logical_units/logical_unit")
        dst = _id(m, "to/lun_storage/logical_units/logical_unit")
        if src and dst:
            reg.luns[src] = dst
    return reg
