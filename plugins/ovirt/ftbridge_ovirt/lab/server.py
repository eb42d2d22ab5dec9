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
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ftbridge_ovirt.lab import render as R
from ftbridge_ovirt.lab.engine import Fault, LabEngine
from ftbridge_ovirt.lab.model import Attachment

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

    def __init__(self, addr: tuple[str, int], engine: LabEngine, *, user: str, password: str,
                 stats: Stats, tls: ssl.SSLContext | None) -> None:
        super().__init__(addr, Handler)
        self.engine = engine
        self.user = user
        self.password = password
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
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_CLAUSE = re.compile(r"^\s*([a-z_.]+)\s*(!=|=)\s*(.*?)\s*$", re.IGNORECASE)


def search_filter(text: str | None, fields: Callable[[Any], dict[str, str | None]],
                  known: frozenset[str]) -> Callable[[Any], bool]:
    """A predicate for the engine's search syntax: ``k=v and k2!=v*`` (case-insensitive, ``*``)."""
    if not text or not text.strip():
        return lambda obj: True
    clauses = []
    for part in _AND.split(text.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise Fault(400, "Bad Request", f"Invalid search query: {text!r}")
        key, op, val = m.group(1).lower(), m.group(2), m.group(3).strip('"').lower()
        if key not in known:
            raise Fault(400, "Bad Request", f"Invalid search query: unknown field {key!r} "
                                            f"(known: {', '.join(sorted(known))})")
        clauses.append((key, op, val))

    def pred(obj: Any) -> bool:
        f = fields(obj)
        for key, op, val in clauses:
            got = (f.get(key) or "").lower()
            hit = fnmatch.fnmatchcase(got, val)
            if hit != (op == "="):
                return False
        return True

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
                self.connection.do_handshake()  # type: ignore[attr-defined]
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
        segs = [s for s in url.path[len(API):].split("/") if s]
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
        is_action = method == "POST" and len(segs) == 3 and segs[0] in ("vms", "disks", "hosts")
        try:
            with eng.lock:
                eng.tick()
                code, xml = Routes(eng, query).dispatch(method, segs, body)
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
            reply = {"error_code": "access_denied",
                     "error": f"Cannot authenticate user '{form.get('username', '')}': "
                              "The username or password is incorrect."}
            return self._send(400, json.dumps(reply).encode(), "application/json")
        token = secrets.token_urlsafe(32)
        srv.tokens.add(token)
        reply = {"access_token": token, "scope": form.get("scope", "ovirt-app-api"), "token_type": "bearer",
                 "exp": str(int((time.time() + 3600) * 1000))}
        self._send(200, json.dumps(reply).encode(), "application/json")


class Routes:
    """One request's view of the engine; called with the engine's lock held."""

    VM_FIELDS = frozenset({"name", "id", "status", "cluster", "host", "tag", "description"})
    DISK_FIELDS = frozenset({"alias", "name", "id", "status", "storage", "description"})
    JOB_FIELDS = frozenset({"correlation_id", "status", "description"})
    NAME_FIELDS = frozenset({"name", "id", "status"})

    def __init__(self, eng: LabEngine, query: dict[str, str]) -> None:
        self.eng = eng
        self.q = query
        self.corr = query.get("correlation_id")

    def follow(self, allowed: set[str], what: str) -> set[str]:
        got = {x.strip() for x in self.q.get("follow", "").split(",") if x.strip()}
        bad = got - allowed
        if bad:
            raise Fault(400, "Bad Request", f"Invalid follow: {what} has no link {sorted(bad)[0]!r}")
        return got

    def _max(self, items: list[str]) -> list[str]:
        if "max" in self.q:
            return items[: int(self.q["max"])]
        return items

    def dispatch(self, method: str, segs: list[str], body: bytes) -> tuple[int, str]:
        eng = self.eng
        n = len(segs)
        head = segs[0] if segs else ""
        if method == "GET":
            if n == 0:
                return 200, R.api(eng, time.time())
            if head == "datacenters":
                return self._get_dcs(segs)
            if head == "clusters":
                return self._get_named(segs, "clusters", "cluster", lambda c: R.cluster(c))
            if head == "hosts":
                return self._get_named(segs, "hosts", "host", lambda h: R.host(eng, h))
            if head == "storagedomains":
                return self._get_domains(segs)
            if head == "vms":
                return self._get_vms(segs)
            if head == "disks":
                return self._get_disks(segs)
            if head == "jobs":
                return self._get_jobs(segs)
        elif method == "POST":
            if segs == ["vms"]:
                return self._add_vm(body)
            if n == 3 and head == "vms" and segs[2] in ("start", "stop", "shutdown"):
                return self._vm_action(segs[1], segs[2], body)
            if n == 3 and head == "vms" and segs[2] == "diskattachments":
                return self._attach(segs[1], body)
            if n == 3 and head == "vms" and segs[2] == "nics":
                return self._add_nic(segs[1], body)
            if n == 3 and head == "disks" and segs[2] in ("move", "copy"):
                return self._disk_action(segs[1], segs[2], body)
            if n == 3 and head == "hosts" and segs[2] == "fence":
                return self._fence(segs[1], body)
            if n == 3 and head == "datacenters" and segs[2] == "storagedomains":
                sd = _id(_xml(body, "storage_domain"), ".")
                dom = eng.attach_domain(segs[1], sd or "", self.corr)
                return 201, R.storage_domain(eng, dom, dc_view=True)
            if n == 5 and head == "storagedomains" and segs[2] == "vms" and segs[4] == "register":
                el = _xml(body, "action")
                vm = eng.register_vm(segs[1], segs[3], _id(el, "cluster"), _text(el, "cluster/name"), self.corr)
                return 200, R.action("complete") if vm else R.action("failed")
        elif method == "PUT":
            if n == 2 and head == "vms":
                return self._update_vm(segs[1], body)
            if n == 2 and head == "disks":
                return self._update_disk(segs[1], body)
            if n == 4 and head == "vms" and segs[2] == "nics":
                el = _xml(body, "nic")
                nic = eng.update_nic(segs[1], segs[3], _bool(el, "plugged"), _bool(el, "linked"))
                return 200, R.nic(eng.vms[segs[1]], nic)
        elif method == "DELETE":
            detach_only = self.q.get("detach_only", "false").lower() == "true"
            if n == 2 and head == "vms":
                eng.remove_vm(segs[1], detach_only, self.corr)
                return 200, R.action()
            if n == 2 and head == "disks":
                eng.remove_disk(segs[1], self.corr)
                return 200, R.action()
            if n == 4 and head == "vms" and segs[2] == "diskattachments":
                eng.detach_disk(segs[1], segs[3], detach_only, self.corr)
                return 200, R.action()
        raise Fault(404, "Not Found", f"no resource for {method} {API}/{'/'.join(segs)}")

    # reads -------------------------------------------------------------------------------
    def _get_dcs(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            follow = self.follow({"storage_domains", "clusters"}, "data_center")
            pred = search_filter(self.q.get("search"), lambda d: {"name": d.name, "id": d.id}, self.NAME_FIELDS)
            return 200, R.collection("data_centers", self._max(
                [R.data_center(eng, d, follow) for d in eng.dcs.values() if pred(d)]))
        dc = eng.get("dcs", segs[1], "data center")
        if len(segs) == 2:
            return 200, R.data_center(eng, dc, self.follow({"storage_domains", "clusters"}, "data_center"))
        if len(segs) == 3 and segs[2] == "storagedomains":
            return 200, R.collection("storage_domains", (R.storage_domain(eng, d, dc_view=True)
                                                         for d in eng.domains.values() if d.dc == dc.id))
        if len(segs) == 4 and segs[2] == "storagedomains":
            d = eng.get("domains", segs[3], "storage domain")
            if d.dc != dc.id:
                raise Fault(404, "Not Found", f"storage domain {segs[3]} is not attached to {dc.name}")
            return 200, R.storage_domain(eng, d, dc_view=True)
        if len(segs) == 3 and segs[2] == "clusters":
            return 200, R.collection("clusters", (R.cluster(c) for c in eng.clusters.values() if c.dc == dc.id))
        raise Fault(404, "Not Found", "no such data center resource")

    def _get_named(self, segs: list[str], table: str, tag: str, one: Callable[[Any], str]) -> tuple[int, str]:
        objs = getattr(self.eng, table)
        if len(segs) == 1:
            self.follow(set(), tag)
            pred = search_filter(self.q.get("search"),
                                 lambda o: {"name": o.name, "id": o.id, "status": getattr(o, "status", None)},
                                 self.NAME_FIELDS)
            return 200, R.collection(table, self._max([one(o) for o in objs.values() if pred(o)]))
        if len(segs) == 2:
            return 200, one(self.eng.get(table, segs[1], tag))
        raise Fault(404, "Not Found", f"no such {tag} resource")

    def _get_domains(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            pred = search_filter(self.q.get("search"), lambda d: {"name": d.name, "id": d.id, "status": d.status},
                                 self.NAME_FIELDS)
            return 200, R.collection("storage_domains",
                                     self._max([R.storage_domain(eng, d) for d in eng.domains.values() if pred(d)]))
        d = eng.get("domains", segs[1], "storage domain")
        if len(segs) == 2:
            return 200, R.storage_domain(eng, d)
        if len(segs) == 3 and segs[2] == "vms":
            if self.q.get("unregistered", "").lower() == "true":
                return 200, R.collection("vms", (R.vm(eng, v, set()) for v, _ in eng.unregistered_vms.get(d.id, [])))
            on = [v for v in eng.vms.values()
                  if any(eng.disks.get(a.disk) and eng.disks[a.disk].domain == d.id for a in v.attachments)]
            return 200, R.collection("vms", (R.vm(eng, v, set()) for v in on))
        if len(segs) == 3 and segs[2] == "disks":
            owners = eng.disk_owners()
            return 200, R.collection("disks", (R.disk(eng, k, owners.get(k.id))
                                               for k in eng.disks.values() if k.domain == d.id))
        raise Fault(404, "Not Found", "no such storage domain resource")

    def _vm_fields(self, v: Any) -> dict[str, str | None]:
        eng = self.eng
        return {"name": v.name, "id": v.id, "status": v.status, "cluster": eng.clusters[v.cluster].name,
                "host": eng.hosts[v.host].name if v.host else None, "tag": ",".join(v.tags),
                "description": v.description}

    def _get_vms(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        allowed = {"disk_attachments", "disk_attachments.disk", "tags", "nics"}
        if len(segs) == 1:
            follow = self.follow(allowed, "vm")
            pred = search_filter(self.q.get("search"), self._vm_fields, self.VM_FIELDS)
            return 200, R.collection("vms", self._max([R.vm(eng, v, follow) for v in eng.vms.values() if pred(v)]))
        v = eng.get("vms", segs[1], "vm")
        if len(segs) == 2:
            return 200, R.vm(eng, v, self.follow(allowed, "vm"))
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
        raise Fault(404, "Not Found", "no such vm resource")

    def _get_disks(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            pred = search_filter(
                self.q.get("search"),
                lambda k: {"alias": k.alias, "name": k.alias, "id": k.id, "status": k.status,
                           "storage": eng.domains[k.domain].name, "description": k.description},
                self.DISK_FIELDS)
            owners = eng.disk_owners()
            return 200, R.collection("disks", self._max([R.disk(eng, k, owners.get(k.id))
                                                         for k in eng.disks.values() if pred(k)]))
        if len(segs) == 2:
            return 200, R.disk(eng, eng.get("disks", segs[1], "disk"))
        raise Fault(404, "Not Found", "no such disk resource")

    def _get_jobs(self, segs: list[str]) -> tuple[int, str]:
        eng = self.eng
        if len(segs) == 1:
            pred = search_filter(
                self.q.get("search"),
                lambda j: {"correlation_id": j.correlation_id, "status": j.status, "description": j.description},
                self.JOB_FIELDS)
            jobs = sorted((j for j in eng.jobs.values() if pred(j)), key=lambda j: j.start)
            return 200, R.collection("jobs", self._max([R.job(j) for j in jobs]))
        if len(segs) == 2:
            return 200, R.job(eng.get("jobs", segs[1], "job"))
        raise Fault(404, "Not Found", "no such job resource")

    # changes -----------------------------------------------------------------------------
    def _answer(self, job_id: str, el: ET.Element | None, pending: bool) -> tuple[int, str]:
        """As the engine: 200 + complete, or 202 + pending when the caller asked for async."""
        asked_async = _bool(el, "async") or self.q.get("async", "").lower() == "true"
        if asked_async and pending:
            return 202, R.action("pending", job_id)
        return 200, R.action("complete", job_id)

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

    def _fence(self, host_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "action")
        kind = (_text(el, "fence_type") or "").lower()
        if kind != "manual":
            raise Fault(409, "Operation Failed", f"[Cannot fence host: fence type {kind!r} needs power management, "
                                                 "which the lab hosts do not have]")
        job = self.eng.fence_manual(host_id, self.corr)
        return self._answer(job.id, el, pending=False)

    def _add_vm(self, body: bytes) -> tuple[int, str]:
        el = _xml(body, "vm")
        mem = _text(el, "memory")
        vm = self.eng.add_vm(_text(el, "name") or "", _id(el, "cluster"), _text(el, "cluster/name"),
                             _text(el, "description") or "", bool(_bool(el, "stateless")),
                             int(mem) if mem else None, self.corr)
        return 201, R.vm(self.eng, vm, set())

    def _update_vm(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "vm")
        changes: dict[str, Any] = {"name": _text(el, "name"), "description": _text(el, "description"),
                                   "ha": _bool(el, "high_availability/enabled"), "cluster": _id(el, "cluster")}
        lease = el.find("lease")
        if lease is not None:
            changes["lease"] = _id(lease, "storage_domain")
        vm = self.eng.update_vm(vm_id, changes, self.corr)
        return 200, R.vm(self.eng, vm, set())

    def _update_disk(self, disk_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "disk")
        disk = self.eng.update_disk(disk_id, _text(el, "alias"), _text(el, "description"), self.corr)
        return 200, R.disk(self.eng, disk)

    def _attach(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "disk_attachment")
        disk_id = _id(el, "disk")
        if not disk_id:
            raise Fault(400, "Incomplete parameters", "DiskAttachment [disk.id] required for add")
        att = Attachment(disk=disk_id, interface=_text(el, "interface") or "virtio_scsi",
                         bootable=bool(_bool(el, "bootable")), active=_bool(el, "active") is not False)
        self.eng.attach_disk(vm_id, att, self.corr)
        return 201, R.attachment(self.eng, self.eng.vms[vm_id], att, False)

    def _add_nic(self, vm_id: str, body: bytes) -> tuple[int, str]:
        el = _xml(body, "nic")
        plugged = _bool(el, "plugged")
        linked = _bool(el, "linked")
        nic = self.eng.add_nic(vm_id, _text(el, "name") or "nic1", plugged is not False, linked is not False,
                               _id(el, "vnic_profile"), self.corr)
        return 201, R.nic(self.eng.vms[vm_id], nic)
