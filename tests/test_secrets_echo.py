"""A server that answers errors with the request reflected (as some proxies and misconfigured
servers do) never gets a secret printed: not in tables, not in ``-o json``, not in ``--debug``
tracebacks and logs, in none of the forms the secret travelled in.

Each driver that sends credentials is pointed, through its real client library, at a real
HTTPS server on 127.0.0.1 whose error answers quote the request line, headers and body.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import pytest
from helpers import ftb

pytest.importorskip("ftbridge_ovirt.lab.tls")
from ftbridge_ovirt.lab.tls import make_tls  # noqa: E402 - a throwaway CA for 127.0.0.1

#: every character here changes under some encoding (URL, JSON, XML, base64 padding)
SECRET = 'CANARY-s3cr3t p@ss+w/rd&"<ok>'
TICKET = "PVE:ftbridge@pve:65A1B2C3::CANARYTICKETsig+abc/def=="
CSRF = "65A1B2C3:CANARYcsrfTOKENxyz"
BEARER = "CANARY-ovirt-bearer-0f9e8d7c6b5a"
SESSION = "CANARY-vsphere-session-9a8b7c6d5e4f"
MARKER = "REFLECTED-REQUEST"

Answer = Callable[["_Reflector"], None]


def forms(value: str, user: str | None = None) -> set[str]:
    """What a leak looks like: the value as is and in each encoding a wire or an output uses."""
    base = {value, quote(value, safe=""), quote(value), quote_plus(value), xml_escape(value), html_escape(value)}
    out = base | {json.dumps(f)[1:-1] for f in base}
    if user is not None:
        out.add(base64.b64encode(f"{user}:{value}".encode()).decode())
    return out


class _Reflector(BaseHTTPRequestHandler):
    answer: Answer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        type(self).answer(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def reflected(self) -> str:
        """The request as a misconfigured server quotes it back."""
        return f"{MARKER} {self.command} {self.path}\n{self.headers}\n{self.body}"

    def send(self, status: int, body: str, ctype: str = "application/json", reason: str | None = None) -> None:
        data = body.encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def reflector(tmp_path: Path) -> Iterator[Callable[[Answer], tuple[int, Path]]]:
    servers: list[ThreadingHTTPServer] = []
    ca, ctx = make_tls(tmp_path)

    def start(answer: Answer) -> tuple[int, Path]:
        handler = type("Handler", (_Reflector,), {"answer": staticmethod(answer)})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1], ca

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def run_everywhere(cfg: Path, tmp_path: Path) -> list[str]:
    """``endpoints check`` as a table, as JSON and with --debug, and ``--debug inventory`` (its
    traceback chains the SDK's own exception): every output, stdout and stderr."""
    env = {"ECHO_SECRET": SECRET, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    outputs: list[str] = []
    for args in (
        ["endpoints", "check"],
        ["endpoints", "check", "-o", "json"],
        ["--debug", "endpoints", "check"],
        ["--debug", "inventory", "-o", "json"],
    ):
        r = ftb("-c", str(cfg), *args, env=env)
        assert r.code not in (0, 70), (args, r.code, r.err)  # the endpoint failed, cleanly
        if args[0] == "--debug" and args[1] == "inventory":
            assert "Traceback" in r.err, r.err  # the SDK's exception, chained, is printed
        outputs += [r.out, r.err]
    return outputs


def assert_no_leak(outputs: list[str], secrets: dict[str, set[str]]) -> None:
    everything = "\n".join(outputs)
    assert MARKER in everything, "the reflected request should reach the output (else this tests nothing)"
    for name, values in secrets.items():
        leaked = sorted(v for v in values if v in everything)
        assert not leaked, f"{name} leaked as {leaked}"


# -- Proxmox VE: API token, then password login -------------------------------------------------
def pve_reflects(h: _Reflector) -> None:
    """PVE's error shape (400), with the request it got in the error body."""
    h.send(400, json.dumps({"data": None, "errors": {"request": h.reflected()}}), reason="Bad Request")


def pve_config(where: Path, port: int, ca: Path, auth: str) -> Path:
    """A config with one PVE endpoint on the reflector; ``auth``: its credential lines."""
    cfg = where / "ftbridge.toml"
    cfg.write_text(
        f'[endpoints.pve]\ndriver = "proxmox"\nurl = "https://127.0.0.1:{port}"\nuser = "ftbridge@pve"\n'
        f'{auth}ca_file = "{ca}"\nread_retries = 0\n'
    )
    return cfg


def test_proxmox_token_echoed_is_masked(reflector: Callable[[Answer], tuple[int, Path]], tmp_path: Path) -> None:
    port, ca = reflector(pve_reflects)  # every request: 400 with the request in the error body
    cfg = pve_config(tmp_path, port, ca, 'token_name = "ci"\ntoken = { env = "ECHO_SECRET" }\n')
    assert_no_leak(run_everywhere(cfg, tmp_path), {"token": forms(SECRET)})


def test_proxmox_password_and_ticket_echoed_are_masked(
    reflector: Callable[[Answer], tuple[int, Path]], tmp_path: Path
) -> None:
    def answer(h: _Reflector) -> None:  # the login succeeds; every later call reflects its ticket
        if h.path.endswith("/access/ticket"):
            h.send(200, json.dumps({"data": {"ticket": TICKET, "CSRFPreventionToken": CSRF, "username": "x@pve"}}))
        else:
            pve_reflects(h)

    port, ca = reflector(answer)
    cfg = pve_config(tmp_path, port, ca, 'password = { env = "ECHO_SECRET" }\n')
    assert_no_leak(
        run_everywhere(cfg, tmp_path), {"password": forms(SECRET), "ticket": forms(TICKET), "csrf": forms(CSRF)}
    )


# -- oVirt: the SSO login (form body), then the API (Bearer token) ------------------------------
def test_ovirt_password_echoed_by_sso_is_masked(
    reflector: Callable[[Answer], tuple[int, Path]], tmp_path: Path
) -> None:
    def answer(h: _Reflector) -> None:  # the SSO answers its error with the login form quoted
        h.send(400, json.dumps({"error": "invalid_grant", "error_description": h.reflected()}))

    port, ca = reflector(answer)
    cfg = tmp_path / "ftbridge.toml"
    cfg.write_text(
        f'[endpoints.engine]\ndriver = "ovirt"\nurl = "https://127.0.0.1:{port}/ovirt-engine/api"\n'
        f'user = "admin@internal"\npassword = {{ env = "ECHO_SECRET" }}\nca_file = "{ca}"\n'
    )
    assert_no_leak(run_everywhere(cfg, tmp_path), {"password": forms(SECRET, "admin@internal")})


def test_ovirt_bearer_token_echoed_by_the_api_is_masked(
    reflector: Callable[[Answer], tuple[int, Path]], tmp_path: Path
) -> None:
    def answer(h: _Reflector) -> None:  # the login succeeds; the API quotes the request in a fault
        if "/sso/oauth/token" in h.path:
            h.send(200, json.dumps({"access_token": BEARER, "token_type": "bearer", "exp": "9999999999999"}))
        else:
            fault = f"<fault><reason>Operation Failed</reason><detail>{xml_escape(h.reflected())}</detail></fault>"
            h.send(400, fault, ctype="application/xml")

    port, ca = reflector(answer)
    cfg = tmp_path / "ftbridge.toml"
    cfg.write_text(
        f'[endpoints.engine]\ndriver = "ovirt"\nurl = "https://127.0.0.1:{port}/ovirt-engine/api"\n'
        f'user = "admin@internal"\npassword = {{ env = "ECHO_SECRET" }}\nca_file = "{ca}"\n'
    )
    assert_no_leak(run_everywhere(cfg, tmp_path), {"password": forms(SECRET), "bearer": forms(BEARER)})


# -- vSphere: the SOAP Login (password XML-escaped in the body) ---------------------------------
_SOAP = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
)


def _versions() -> str:
    """vimServiceVersions.xml naming every version this pyVmomi knows (the client picks its newest)."""
    from pyVmomi import VmomiSupport

    ids = sorted({v for k, v in VmomiSupport.versionIdMap.items() if k.startswith("vim.version")})
    prior = "".join(f"<version>{v}</version>" for v in ids)
    return (
        f'<namespaces version="1.0"><namespace><name>urn:vim25</name><version>{ids[-1]}</version>'
        f"<priorVersions>{prior}</priorVersions></namespace></namespaces>"
    )


def _vsphere(login_ok: bool) -> Answer:
    """A vCenter as far as Login: its versions and service content; then either the Login is
    answered by a fault quoting the request, or it succeeds (with a session cookie) and the next
    call is answered so."""
    versions = _versions()

    def answer(h: _Reflector) -> None:
        if h.command == "GET":
            h.send(200, versions, ctype="text/xml")
        elif "RetrieveServiceContent" in h.body and "vmware_soap_session" not in str(h.headers):
            h.send(200, _SOAP.format(_CONTENT), ctype="text/xml; charset=utf-8")
        elif login_ok and "<Login " in h.body:
            h.send_response(200)
            h.send_header("Set-Cookie", f'vmware_soap_session="{SESSION}"; Path=/; HttpOnly; Secure')
            data = _SOAP.format(_LOGIN).encode()
            h.send_header("Content-Type", "text/xml; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        else:
            fault = (
                "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
                f"<faultstring>{xml_escape(h.reflected())}</faultstring>"
                '<detail><SystemErrorFault xmlns="urn:vim25" xsi:type="SystemError">'
                "<reason>proxy error</reason></SystemErrorFault></detail></soapenv:Fault>"
            )
            h.send(500, _SOAP.format(fault), ctype="text/xml; charset=utf-8")

    return answer


_CONTENT = (
    '<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval>'
    '<rootFolder type="Folder">group-d1</rootFolder>'
    '<propertyCollector type="PropertyCollector">propertyCollector</propertyCollector>'
    "<about><name>VMware vCenter Server</name><fullName>VMware vCenter Server 8.0.2</fullName>"
    "<vendor>VMware, Inc.</vendor><version>8.0.2</version><build>1</build><osType>linux-x64</osType>"
    "<productLineId>vpx</productLineId><apiType>VirtualCenter</apiType><apiVersion>8.0.2.0</apiVersion>"
    '</about><sessionManager type="SessionManager">SessionManager</sessionManager>'
    "</returnval></RetrieveServiceContentResponse>"
)
_LOGIN = (
    '<LoginResponse xmlns="urn:vim25"><returnval><key>52a1-session-key</key>'
    "<userName>VSPHERE.LOCAL\\Administrator</userName><fullName>Administrator</fullName>"
    "<loginTime>2026-01-01T00:00:00Z</loginTime><lastActiveTime>2026-01-01T00:00:00Z</lastActiveTime>"
    "<locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession>"
    "<ipAddress>127.0.0.1</ipAddress><userAgent>pyvmomi</userAgent><callCount>0</callCount>"
    "</returnval></LoginResponse>"
)


@pytest.mark.parametrize("login_ok", [False, True], ids=["password-in-login", "session-cookie-after-login"])
def test_vsphere_password_and_session_echoed_are_masked(
    reflector: Callable[[Answer], tuple[int, Path]], tmp_path: Path, login_ok: bool
) -> None:
    port, ca = reflector(_vsphere(login_ok))
    cfg = tmp_path / "ftbridge.toml"
    cfg.write_text(
        f'[endpoints.vc]\ndriver = "vsphere"\nhost = "127.0.0.1"\nport = {port}\n'
        f'user = "administrator@vsphere.local"\npassword = {{ env = "ECHO_SECRET" }}\nca_file = "{ca}"\n'
    )
    assert_no_leak(run_everywhere(cfg, tmp_path), {"password": forms(SECRET), "session": forms(SESSION)})
