"""The vSphere lab: ``ftbridge-vcsim`` (contrib/vcsim, govmomi's simulator plus Fault Tolerance,
file-moving relocation and failure injection) seeded from an estate, on a free loopback port.

The binary is found at ``$FTBRIDGE_VCSIM_BIN``, or built by ``contrib/vcsim/build.sh`` (from the
source tree this package sits in, or ``$FTBRIDGE_VCSIM_SRC``), which installs Debian's Go and
govmomi when missing. vcsim writes real files for every VM, so its data goes to a tmpfs
(``/dev/shm``) when there is one. The server dies with the lab: it exits when its stdin closes.

Each lab serves its own fresh self-signed certificate, and :meth:`endpoint_config` hands it to
the driver as ``ca_file``, so the lab runs with TLS verification on.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ftbridge.errors import BackendUnavailable
from ftbridge.estate import Estate
from ftbridge.labs import Lab

LAB_USER = "administrator@vsphere.local"


class VcsimUnavailable(BackendUnavailable):
    """The lab binary cannot be found or built (no Go or govmomi, and no way to install them)."""


def _source_dir() -> Path:
    env = os.environ.get("FTBRIDGE_VCSIM_SRC")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "contrib" / "vcsim"


def vcsim_binary() -> Path:
    """The ftbridge-vcsim binary, built on first use (serialised across processes)."""
    env = os.environ.get("FTBRIDGE_VCSIM_BIN")
    if env and os.access(env, os.X_OK):
        return Path(env)
    src = _source_dir()
    script = src / "build.sh"
    if not script.exists():
        raise VcsimUnavailable(
            f"no ftbridge-vcsim binary and no build script at {script}",
            hint="set FTBRIDGE_VCSIM_BIN, or FTBRIDGE_VCSIM_SRC to ftbridge's contrib/vcsim",
        )
    lock = Path(tempfile.gettempdir()) / "ftbridge-vcsim-build.lock"
    with open(lock, "a+") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise VcsimUnavailable(
            f"building ftbridge-vcsim failed (exit {proc.returncode}): {tail}",
            hint="install golang-go and golang-github-vmware-govmomi-dev (Debian), then retry",
        )
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise VcsimUnavailable(f"build.sh reported {path}, which is not an executable")
    return path


def _scratch_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def estate_document(
    estate: Estate, *, datacenters: Mapping[str, Sequence[str]] | None = None, shapes: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An estate in the estate-file JSON form the Go program reads (sizes in bytes).

    ``datacenters`` puts hosts (by estate id, or every host of a cluster by cluster name) in a
    datacenter of that name; the others stay in the first one. ``shapes`` are the lab's own
    (see :class:`VsphereLab`)."""
    where: dict[str, str] = {}
    for dc, members in (datacenters or {}).items():
        for m in members:
            where[m] = dc
    doc: dict[str, Any] = {
        "flavor": estate.flavor,
        "hosts": [
            {
                "id": h.id,
                "name": h.name,
                "cluster": h.cluster,
                "state": h.state.value,
                "memory": h.memory,
                "datacenter": where.get(h.id) or where.get(h.cluster or "", ""),
            }
            for h in estate.hosts
        ],
        "datastores": [
            {
                "id": d.id,
                "name": d.name,
                "kind": d.kind,
                "hosts": list(d.hosts),
                "shared": d.shared,
                "capacity": d.capacity,
                "free": max(d.free, 0),
                "accessible": d.accessible,
                "thin": getattr(d, "thin", False),
                "committed": getattr(d, "committed", None),
            }
            for d in estate.datastores
        ],
        "networks": [
            {"id": n.id, "name": n.name, "kind": n.kind, "vlan": n.vlan, "hosts": list(n.hosts)}
            for n in getattr(estate, "networks", ())
        ],
        "vms": [
            {
                "id": v.id,
                "name": v.name,
                "host": v.host,
                "power": v.power.value,
                "vcpus": v.vcpus,
                "memory": v.memory,
                "config_datastore": v.config_datastore,
                "managed_by": getattr(v, "managed_by", None),
                "uuid": getattr(v, "uuid", ""),
                "disks": [
                    {
                        "id": d.id,
                        "size": d.size,
                        "datastore": d.datastore,
                        "kind": getattr(d, "kind", "disk"),
                        "thin": getattr(d, "thin", False),
                        "allocated": getattr(d, "allocated", None),
                    }
                    for d in v.disks
                ],
                "nics": [
                    {"id": n.id, "network": n.network, "mac": n.mac, "model": n.model} for n in getattr(v, "nics", ())
                ],
                "depends_on": [
                    {"kind": x.kind, "datastore": x.datastore, "path": x.path} for x in getattr(v, "depends_on", ())
                ],
                "secondaries": [
                    {
                        "id": s.id,
                        "mechanism": s.mechanism,
                        "host": s.host,
                        "state": s.state.value,
                        "config_datastore": s.config_datastore,
                        "metadata_datastore": s.metadata_datastore,
                        "disks": {x.disk: x.datastore for x in s.disks},
                    }
                    for s in v.secondaries
                ],
            }
            for v in estate.vms
        ],
    }
    if shapes:
        doc["vsphere"] = dict(shapes)
    return {"estates": {estate.name: _no_none(doc)}}


def _no_none(value: Any) -> Any:
    """The document without keys whose value is None (the estate reader takes absent for unset)."""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_none(v) for v in value]
    return value


class VsphereLab(Lab):
    """vcsim with FT, on 127.0.0.1. Without an estate it builds vcsim's own model (``vms`` per
    resource pool, ``hosts`` in one cluster, ``datastores`` shared by all, all of it in each of
    ``datacenters``); ``plain=True`` serves an unextended vcsim (what 0.24.2 does by itself).

    Shapes a real vCenter has and an estate file does not say (see contrib/vcsim/README.md):
    ``datacenters`` (estate labs: datacenter name -> host ids or cluster names in it),
    ``refused`` (VM names whose properties the server refuses: NoPermission in missingSet),
    ``orphaned`` and ``inaccessible`` (VM names vCenter lists so), ``page_size`` (the
    PropertyCollector returns at most this many objects per reply and pages the rest).
    """

    driver = "vsphere"
    api_versions = (2, 2)  # the lab contract it is written for: fail_host and partition_host
    flavor = "vsphere"  # which estate of a file `ftbridge lab vsphere` picks by default

    def __init__(
        self,
        estate: Estate | None = None,
        *,
        port: int = 0,
        plain: bool = False,
        vms: int = 2,
        hosts: int = 3,
        datastores: int = 1,
        user: str = LAB_USER,
        start_timeout: float = 120.0,
        datacenters: int | Mapping[str, Sequence[str]] = 1,
        refused: Sequence[str] = (),
        orphaned: Sequence[str] = (),
        inaccessible: Sequence[str] = (),
        page_size: int = 0,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(f"unknown lab options: {', '.join(sorted(options))}")
        if plain and (page_size or refused or orphaned or inaccessible):
            raise TypeError("a plain vcsim has no paging, refusals or unreadable VMs: drop plain=True")
        if estate is None and (refused or orphaned or inaccessible or not isinstance(datacenters, int)):
            raise TypeError("refused, orphaned, inaccessible VMs and named datacenters need an estate")
        self.estate, self.port, self.plain = estate, port, plain
        self.vms, self.hosts, self.datastores = vms, hosts, datastores
        self.datacenters = datacenters
        self.page_size = page_size
        self.shapes = {
            k: list(v) for k, v in (("refused", refused), ("orphaned", orphaned), ("inaccessible", inaccessible)) if v
        }
        self.user = user
        self.start_timeout = start_timeout
        self._password = secrets.token_urlsafe(18)
        self._proc: subprocess.Popen[str] | None = None
        self._dir: str | None = None
        self.info: dict[str, Any] = {}

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._proc is not None:
            return
        binary = vcsim_binary()
        self._dir = tempfile.mkdtemp(prefix="ftbridge-vcsim-lab-", dir=_scratch_root())
        args = [
            str(binary),
            "-listen",
            f"127.0.0.1:{self.port}",
            "-stdin-eof",
            "-quiet",
            "-dir",
            os.path.join(self._dir, "data"),
            "-username",
            self.user,
        ]
        if self.estate is not None:
            path = os.path.join(self._dir, "estate.json")
            dcs = self.datacenters if not isinstance(self.datacenters, int) else None
            with open(path, "w", encoding="utf-8") as f:
                json.dump(estate_document(self.estate, datacenters=dcs, shapes=self.shapes), f)
            args += ["-estate", path, "-name", self.estate.name]
        else:
            args += ["-vms", str(self.vms), "-hosts", str(self.hosts), "-datastores", str(self.datastores)]
            if isinstance(self.datacenters, int) and self.datacenters > 1:
                args += ["-datacenters", str(self.datacenters)]
        if self.page_size:
            args += ["-page-size", str(self.page_size)]
        if self.plain:
            args.append("-plain")
        env = {**os.environ, "TMPDIR": self._dir, "FTBRIDGE_VCSIM_PASSWORD": self._password}
        errlog = open(os.path.join(self._dir, "vcsim.log"), "w", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=env, text=True
        )
        errlog.close()
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(
                self._proc.stdout.readline()  # type: ignore[union-attr]
                if self._proc
                else ""
            ),
            daemon=True,
        )
        reader.start()
        reader.join(self.start_timeout)
        if not line or not line[0].strip():
            log = self._log_tail()
            self.stop()
            raise BackendUnavailable(f"ftbridge-vcsim did not start: {log or 'no output'}")
        self.info = json.loads(line[0])
        self.port = int(self.info["port"])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _log_tail(self) -> str:
        if not self._dir:
            return ""
        try:
            with open(os.path.join(self._dir, "vcsim.log"), encoding="utf-8") as f:
                return " | ".join(f.read().strip().splitlines()[-5:])
        except OSError:
            return ""

    # what a driver needs ----------------------------------------------------------------------
    @property
    def password_env(self) -> str:
        return f"FTBRIDGE_VCSIM_{self.port}_PASSWORD"

    @property
    def ca_file(self) -> str:
        return str(self.info["cert"])

    def endpoint_config(self) -> dict[str, Any]:
        self._running()
        return {
            "driver": "vsphere",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": {"env": self.password_env},
            "verify_tls": True,
            "ca_file": self.ca_file,
        }

    def secrets(self) -> Mapping[str, str]:
        return {self.password_env: self._password}

    def local_path(self, datastore_path: str) -> Path | None:
        """The lab's file behind ``[datastore] dir/file`` (estate labs only), to check placement."""
        if self.estate is None or not self._dir or not datastore_path.startswith("["):
            return None
        name, _, rel = datastore_path[1:].partition("]")
        ds = next((d for d in self.estate.datastores if d.name == name), None)
        if ds is None:
            return None
        return Path(self._dir, "data", "datastores", re.sub(r"[^A-Za-z0-9._-]+", "_", ds.id), rel.strip())

    # faults ------------------------------------------------------------------------------------
    def fail_host(self, name: str) -> None:
        """vCenter reports the host down: notResponding and powered off (HA: hostDown); its
        VMs no longer run."""
        self._control("host", {"name": name, "state": "failed"})

    def partition_host(self, name: str) -> None:
        """The host stops answering vCenter (notResponding, power state unknown; HA:
        networkIsolated) but its VMs keep running."""
        self._control("host", {"name": name, "state": "partitioned"})

    def fail_datastore(self, name: str) -> None:
        self._control("datastore", {"name": name, "accessible": False})

    def restore(self) -> None:
        self._control("restore", {})

    def faults(self) -> dict[str, Any]:
        return self._control("state", {})

    def _running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise BackendUnavailable("the vSphere lab is not running (start() it first)")

    def _control(self, what: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._running()
        req = urllib.request.Request(
            f"https://127.0.0.1:{self.port}/ftbridge/{what}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"X-Ftbridge-Token": str(self.info["token"]), "Content-Type": "application/json"},
        )
        ctx = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise BackendUnavailable(f"lab fault injection {what}: {detail}") from exc
