"""The oVirt lab: a peer that speaks the engine's REST API on 127.0.0.1, seeded from an estate.

``OvirtLab(estate).start()`` serves HTTPS (a throwaway CA, :mod:`.tls`) and plain HTTP side by
side over one engine state (:mod:`.engine`), so the driver is proven over the real SDK, pycurl
and the real wire format. Fault injection takes estate names (the :class:`ftbridge.labs.Lab`
contract) plus oVirt-specific knobs in :meth:`OvirtLab.set_faults`.
"""

from __future__ import annotations

import copy
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftbridge.estate import Estate
from ftbridge.labs import Lab
from ftbridge_ovirt.lab.engine import Fault, LabEngine
from ftbridge_ovirt.lab.model import OvfEntity, lab_uuid
from ftbridge_ovirt.lab.server import LabHTTPServer, Stats

__all__ = ["Fault", "LabEngine", "OvirtLab"]


class OvirtLab(Lab):
    """A running lab engine. ``port`` is the HTTPS port, ``http_port`` the plain one (0: free)."""

    driver = "ovirt"
    api_versions = (2, 2)  # the lab contract it is written for: fail_host and partition_host
    flavor = "ovirt"  # `ftbridge lab run ovirt` picks the estate of this flavor

    def __init__(
        self,
        estate: Estate,
        *,
        port: int = 0,
        http_port: int = 0,
        scheme: str = "https",
        op_seconds: float = 0.2,
        user: str = "admin@internal",
        password: str | None = None,
        ha_restart: bool = True,
        seed: int = 0,
        power_management: bool = False,
        admin: bool = True,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(f"unknown lab options: {', '.join(sorted(options))}")
        if scheme not in ("http", "https"):
            raise ValueError("scheme must be http or https")
        self.estate = estate
        self.engine = LabEngine(estate, op_seconds=op_seconds, ha_restart=ha_restart, seed=seed)
        self.engine.audit_user = f"{user}-authz" if "@" in user else user  # as ${UserName} in the audit log
        for host in self.engine.hosts.values():
            host.pm = power_management
        self.admin = admin  # False: a user without admin roles, whose unfiltered queries fail
        self.stats = Stats()
        self.scheme = scheme
        self.user = user
        self.password = password or secrets.token_urlsafe(18)
        self.env_var = "FTBRIDGE_OVIRT_" + re.sub(r"[^A-Z0-9]+", "_", estate.name.upper()) + "_PASSWORD"
        self._ports = {"https": port, "http": http_port}
        self._servers: dict[str, LabHTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._dir: Path | None = None
        self.ca_file: Path | None = None

    # lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._servers:
            return
        from ftbridge_ovirt.lab.tls import make_tls  # cryptography is only needed once serving

        self._dir = Path(tempfile.mkdtemp(prefix="ftbridge-ovirt-lab-"))
        self.ca_file, ctx = make_tls(self._dir)
        for scheme, tls in (("https", ctx), ("http", None)):
            srv = LabHTTPServer(
                ("127.0.0.1", self._ports[scheme]),
                self.engine,
                user=self.user,
                password=self.password,
                stats=self.stats,
                tls=tls,
                admin=self.admin,
            )
            self._servers[scheme] = srv
            t = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.1}, name=f"ovirt-lab-{scheme}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        for srv in servers.values():
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # where it is ------------------------------------------------------------------------
    def port(self, scheme: str | None = None) -> int:
        return int(self._servers[scheme or self.scheme].server_address[1])

    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or self.scheme
        return f"{scheme}://127.0.0.1:{self.port(scheme)}/ovirt-engine/api"

    def endpoint_config(self, scheme: str | None = None) -> dict[str, Any]:
        scheme = scheme or self.scheme
        cfg: dict[str, Any] = {
            "driver": "ovirt",
            "url": self.url(scheme),
            "user": self.user,
            "password": {"env": self.env_var},
        }
        if scheme == "https":
            cfg["ca_file"] = str(self.ca_file)
        return cfg

    def secrets(self) -> Mapping[str, str]:
        return {self.env_var: self.password}

    # faults -------------------------------------------------------------------------------
    def fail_host(self, name: str) -> None:
        """The host dies and the engine reports it down (as after power-management fencing)."""
        with self.engine.lock:
            self.engine.fail_host(self._by_name("hosts", name).id)

    def partition_host(self, name: str) -> None:
        """The engine loses the host (non_responsive) while its VMs keep running there."""
        with self.engine.lock:
            self.engine.partition_host(self._by_name("hosts", name).id)

    def set_power_management(self, name: str, enabled: bool = True) -> None:
        """Give the host a fence agent the engine can power it off with (or take it away)."""
        with self.engine.lock:
            self._by_name("hosts", name).pm = enabled

    def split_brains(self) -> list[str]:
        """Ids of VMs that run twice: still on a partitioned host the engine was told is down,
        and started again elsewhere."""
        with self.engine.lock:
            self.engine.tick()
            return self.engine.split_brains()

    def fail_datastore(self, name: str) -> None:
        with self.engine.lock:
            self.engine.fail_domain(self._by_name("domains", name).id)

    def restore(self) -> None:
        with self.engine.lock:
            self.engine.restore()

    def set_faults(
        self,
        *,
        error_rate: float | None = None,
        slow: float | None = None,
        slow_jobs: float | None = None,
        fail_kinds: set[str] | None = None,
        op_seconds: float | None = None,
    ) -> None:
        """5xx rate (0..1), seconds added to each API call, seconds added to each job, job kinds
        that fail (move, copy, start), the base job duration."""
        with self.engine.lock:
            f = self.engine.faults
            if error_rate is not None:
                f["error_rate"] = error_rate
            if slow is not None:
                f["slow"] = slow
            if slow_jobs is not None:
                f["slow_jobs"] = slow_jobs
            if fail_kinds is not None:
                f["fail_kinds"] = set(fail_kinds)
            if op_seconds is not None:
                self.engine.op_seconds = op_seconds

    def finish_jobs(self) -> None:
        """End every job that is running now, as if its time had come (tests that must not wait)."""
        with self.engine.lock:
            self.engine.hold = False
            for job in self.engine.jobs.values():
                if job.status == "started":
                    job.deadline, job.held = 0.0, False
            self.engine.tick()

    def hold_jobs(self) -> None:
        """Jobs started from now on run until :meth:`release_jobs`, however long that takes: a
        test can look at an operation the engine still runs without racing its duration."""
        with self.engine.lock:
            self.engine.hold = True

    def release_jobs(self) -> None:
        """Stop holding jobs; the held ones end at once, as they would have (finished or failed).
        Idempotent."""
        with self.engine.lock:
            self.engine.release_jobs()

    def events(self) -> list[Any]:
        """A copy of the audit log, oldest first."""
        with self.engine.lock:
            return copy.deepcopy(self.engine.events)

    def fail_next(self, kind: str, times: int = 1) -> None:
        """The next ``times`` jobs of ``kind`` (move, copy, start) fail."""
        with self.engine.lock:
            self.engine.faults["fail_next"][kind] += times

    # disaster recovery ------------------------------------------------------------------------
    def receive_replicas(
        self, primary: OvirtLab, pairs: Mapping[str, str], luns: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Make this lab the second site of ``primary``, as array replication would: each domain of
        ``primary`` named in ``pairs`` (primary name -> replica name) becomes visible here with the
        same UUID, on the secondary array's address (``replica.<address>``, targets ``<iqn>-replica``),
        not yet imported, its OVF store describing the VMs and templates with a disk on it (VM
        status as it was). ``luns`` (primary LUN id -> replica LUN id) replicates direct LUNs.
        Returns primary domain name -> replica domain id."""
        with primary.engine.lock:
            src = primary.engine
            doms = {d.id: d for d in src.domains.values() if d.name in pairs}
            carried: dict[str, list[OvfEntity]] = {sd: [] for sd in doms}
            for vm in src.vms.values():
                disks = [src.disks[a.disk] for a in vm.attachments if a.disk in src.disks]
                for sd in {d.domain for d in disks if d.domain in doms}:
                    carried[sd or ""].append(self._ovf(src, vm, disks))
            for tpl in src.templates.values():
                disks = [src.disks[a.disk] for a in tpl.attachments if a.disk in src.disks]
                for sd in {d.domain for d in disks if d.domain in doms}:
                    carried[sd or ""].append(
                        OvfEntity(
                            kind="template",
                            id=tpl.id,
                            name=tpl.name,
                            obj=copy.deepcopy(tpl),
                            disks=copy.deepcopy(disks),
                            cluster_name=src.clusters[tpl.cluster].name,
                        )
                    )
            replicas = {sd: copy.deepcopy(d) for sd, d in doms.items()}
            lun_copies = [copy.deepcopy(src.luns[k]) for k in (luns or {}) if k in src.luns]
        with self.engine.lock:
            for sd, dom in replicas.items():
                dom.address = f"replica.{dom.address}" if dom.address else ""
                dom.targets = [f"{t}-replica" for t in dom.targets]
                self.engine.receive_replica(dom, carried[sd])
            for lun in lun_copies:
                lun.id = (luns or {})[lun.id]
                lun.address, lun.target = f"replica.{lun.address}", f"{lun.target}-replica"
                self.engine.receive_lun(lun)
        return {d.name: sd for sd, d in doms.items()}

    @staticmethod
    def _ovf(src: LabEngine, vm: Any, disks: list[Any]) -> OvfEntity:
        twin = copy.deepcopy(vm)
        for nic in twin.nics:
            prof = src.profiles.get(nic.profile or "")
            nic.ovf_profile = prof.name if prof else ""
            nic.ovf_network = src.networks[prof.network].name if prof else ""
        twin.status, twin.host, twin.before_fault = "down", None, None
        return OvfEntity(
            kind="vm",
            id=vm.id,
            name=vm.name,
            obj=twin,
            disks=copy.deepcopy(disks),
            status=vm.status if vm.status in ("up", "down") else "up",
            cluster_name=src.clusters[vm.cluster].name,
        )

    # reading the lab (tests) ---------------------------------------------------------------
    def id(self, kind: str, estate_key: str) -> str:
        """The UUID the lab gave an estate object: kind is vm, host, sd, cluster, network, profile, or
        disk (key ``"<vm id>/<disk id>"``; a shareable disk: ``"shared/<disk id>/<vm ids, sorted, ,>"``)."""
        return lab_uuid(self.estate.name, kind, estate_key)

    def snapshot(self, table: str, name: str) -> Any:
        """A copy of a lab object (hosts, domains, vms, disks) by name or alias."""
        with self.engine.lock:
            self.engine.tick()
            return copy.deepcopy(self._by_name(table, name))

    def vms(self) -> list[Any]:
        with self.engine.lock:
            self.engine.tick()
            return copy.deepcopy(list(self.engine.vms.values()))

    def disks(self) -> list[Any]:
        with self.engine.lock:
            self.engine.tick()
            return copy.deepcopy(list(self.engine.disks.values()))

    def _by_name(self, table: str, name: str) -> Any:
        for obj in getattr(self.engine, table).values():
            if getattr(obj, "name", None) == name or getattr(obj, "alias", None) == name:
                return obj
        raise KeyError(f"the lab has no {table[:-1]} named {name!r}")
