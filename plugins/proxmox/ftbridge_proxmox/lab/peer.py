"""``ProxmoxLab``: the lab peer as an :class:`ftbridge.labs.Lab`, for tests, demos and benchmarks.

An estate becomes a PVE cluster this way:

- each host is a node (its name when that is a valid node name);
- a datastore whose id is ``STORAGE@NODE`` is the node-local instance of storage ``STORAGE``
  (``local-zfs@pve1``); a shared datastore is one shared storage; kinds are PVE storage types
  (``rbd``, ``nfs``, ``zfspool``, ``lvm``, ``dir`` ...; others become ``dir``);
- each VM is a QEMU guest (an LXC container when tagged ``pve-lxc``) with a VMID: its estate id
  when that is a number from 100 up, else the next free number from 100 in file order;
  disk ids that are PVE slots (``scsi0``, ``efidisk0``, ``rootfs``) are kept, others become
  ``scsiN``/``mpN``; an unmovable disk with a ``/dev/...`` path is a pass-through device;
- a ``pve-replication`` secondary is a pvesr job to its host; a ``pve-standby`` secondary is a
  stopped full clone named ``ftbridge-standby-<vmid>`` on the secondary's datastore, its
  ``lag_s`` the age written in its description; ``ha = true`` adds an HA resource.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftbridge.estate import Estate
from ftbridge.labs import Lab
from ftbridge_proxmox.lab.server import ApiCore, LabHTTPServer
from ftbridge_proxmox.lab.state import Cluster, Drive, Guest
from ftbridge_proxmox.lab.tls import TlsFiles, make_tls


class ProxmoxLab(Lab):
    """A PVE cluster on https://127.0.0.1:PORT/api2/json, seeded from an estate."""

    driver = "proxmox"
    api_versions = (2, 2)  # the lab contract it is written for: fail_host and partition_host
    TOKEN_ENV = "FTBRIDGE_LAB_PVE_TOKEN"
    PASSWORD_ENV = "FTBRIDGE_LAB_PVE_PASSWORD"

    def __init__(
        self,
        estate: Estate,
        *,
        port: int = 0,
        version: str = "9.1.3",
        task_seconds: float = 0.05,
        sync_seconds: float = 0.05,
        fence_delay: float = 0.2,
        latency: float = 0.0,
        record: bool = True,
        user: str = "root@pam",
        token_id: str = "ftbridge",
        token: str | None = None,
        password: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        if version.split(".")[0] not in ("8", "9"):
            raise ValueError(f"the lab speaks PVE 8 and 9, not {version}")
        self.estate = estate
        self.cluster = Cluster(
            version=version,
            name=estate.name[:15] or "ftlab",
            task_seconds=task_seconds,
            sync_seconds=sync_seconds,
            fence_delay=fence_delay,
        )
        self.cluster.seed(estate)
        self.user = user
        self.token_id = token_id
        self.token = token or str(uuid.uuid4())
        self.password = (
            password if password is not None else (None if estate.password_sha256 else pysecrets.token_urlsafe(18))
        )
        if self.password is not None:
            pw = self.password
            check = lambda given: hmac.compare_digest(given.encode(), pw.encode())  # noqa: E731
        else:
            digest = estate.password_sha256 or ""
            check = lambda given: hmac.compare_digest(  # noqa: E731
                hashlib.sha256(given.encode()).hexdigest(), digest
            )
        self.core = ApiCore(
            self.cluster, users={user: check}, tokens={f"{user}!{token_id}": self.token}, latency=latency, record=record
        )
        self._port = port
        self._workdir = workdir
        self._own_workdir = workdir is None
        self._server: LabHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.tls: TlsFiles | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._server is not None:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="ftbridge-pve-lab-"))
        self.tls = make_tls(self._workdir)
        self._server = LabHTTPServer(("127.0.0.1", self._port), self.core, self.tls.server_context())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pve-lab", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the lab is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api2/json"

    @property
    def ca_file(self) -> Path:
        if self.tls is None:
            raise RuntimeError("the lab is not started")
        return self.tls.ca_file

    def endpoint_config(self) -> dict[str, Any]:
        return {
            "driver": "proxmox",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "token_name": self.token_id,
            "token": {"env": self.TOKEN_ENV},
            "ca_file": str(self.ca_file),
        }

    def secrets(self) -> Mapping[str, str]:
        out = {self.TOKEN_ENV: self.token}
        if self.password is not None:
            out[self.PASSWORD_ENV] = self.password
        return out

    # faults, by estate names -------------------------------------------------------------------
    def _node(self, name: str) -> str:
        node = self.cluster.host_alias.get(name, name)
        if node not in self.cluster.nodes:
            raise KeyError(f"no host {name!r} in this lab (nodes: {', '.join(self.cluster.nodes)})")
        return node

    def fail_host(self, name: str) -> None:
        """The node fails as PVE proves it: dead with its guests, and fenced by PVE's HA stack
        (reported DOWN at once); HA recovers its services after ``fence_delay``."""
        with self.cluster.lock:
            self.cluster.fail_node(self._node(name))

    def partition_host(self, name: str) -> None:
        """The node drops out of the cluster and the API, but its guests keep running (reported
        UNREACHABLE). If its HA LRM held the agent lock, its watchdog resets it and PVE's HA
        fences it after ``fence_delay``, as on PVE; if not, nothing ever proves it down."""
        with self.cluster.lock:
            self.cluster.partition_node(self._node(name))

    def elapse_fence_delay(self) -> None:
        """Time passes for PVE's HA stack: lost nodes have been gone ``fence_delay``, so those
        whose LRM held the agent lock are fenced now (a synchronisation point for tests)."""
        with self.cluster.lock:
            self.cluster.elapse_fence_delay()

    def fail_datastore(self, name: str) -> None:
        """The datastore goes offline; ``STORAGE@NODE`` of a shared storage: not mounted on that
        node only (an NFS export missing on one node)."""
        with self.cluster.lock:
            sid, loc = self.cluster.ds_alias.get(name, (name.partition("@")[0], name.partition("@")[2]))
            if sid not in self.cluster.storages:
                raise KeyError(f"no datastore {name!r} in this lab")
            self.cluster.offline.add((sid, loc))

    def restore(self) -> None:
        with self.cluster.lock:
            self.cluster.restore()
            self.core.faults.update(error_rate=0.0, slow=0.0)

    # extras for tests and demos ----------------------------------------------------------------
    def vmid(self, estate_vm_id: str) -> int:
        """The VMID the lab gave an estate VM."""
        return self.cluster.vmid_of[estate_vm_id]

    def guest(self, vmid: int) -> Guest:
        return self.cluster.guests[vmid]

    def inject(
        self, *, error_rate: float | None = None, error_status: int | None = None, slow: float | None = None
    ) -> None:
        """API faults: a share of calls answered with ``error_status`` (5xx), seconds added per call."""
        if error_rate is not None:
            self.core.faults["error_rate"] = error_rate
        if error_status is not None:
            self.core.faults["error_status"] = error_status
        if slow is not None:
            self.core.faults["slow"] = slow

    def fail_tasks(
        self,
        *,
        type: str | None = None,
        vmid: int | None = None,  # noqa: A002
        message: str = "command failed: exit code 1 (injected)",
        count: int = 1,
    ) -> None:
        """The next ``count`` tasks of this type (and guest) end with ``message`` as exitstatus."""
        with self.cluster.lock:
            self.cluster.task_faults.append({"type": type, "vmid": vmid, "message": message, "count": count})

    def set_config_line(self, vmid: int, key: str, value: str) -> None:
        """Put a raw line into a guest config (to show the driver a line it does not know)."""
        with self.cluster.lock:
            self.cluster.guests[vmid].extra[key] = value

    def set_pending(self, vmid: int, key: str, value: str | None) -> None:
        """A change that waits for the guest's next start: ``value`` None is a pending removal
        (a disk that cannot be hot-unplugged stays attached until then)."""
        with self.cluster.lock:
            g = self.cluster.guests[vmid]
            if value is None:
                g.pending_delete.append(key)
            else:
                g.pending[key] = value

    def attach_device(self, vmid: int, slot: str, path: str, options: str = "") -> None:
        """Pass a host device (``/dev/...``) or, for a container, a host path through."""
        with self.cluster.lock:
            g = self.cluster.guests[vmid]
            kind = "bind" if g.type == "lxc" and not path.startswith("/dev/") else "passthrough"
            g.drives[slot] = Drive(slot, kind, path=path, opts=options)

    def set_drive_options(self, vmid: int, slot: str, options: str) -> None:
        """Replace a drive's options (``replicate=0``, ``shared=1``, ``backup=0`` ...)."""
        with self.cluster.lock:
            self.cluster.guests[vmid].drives[slot].opts = options

    def set_storage(
        self, storage: str, *, disabled: bool | None = None, content: str | None = None, nodes: list[str] | None = None
    ) -> None:
        """Change a storage's config as ``pvesm set`` would: disable it, its content, its nodes."""
        with self.cluster.lock:
            st = self.cluster.storages[storage]
            if disabled is not None:
                st.disabled = disabled
            if content is not None:
                st.content = content
            if nodes is not None:
                st.nodes = [self._node(n) for n in nodes]

    @property
    def split_brain(self) -> list[tuple[int, str, str]]:
        """Guests HA started elsewhere while they still ran: (vmid, running on, started on)."""
        return list(self.cluster.split_brain)

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.core.records

    @property
    def request_count(self) -> int:
        return sum(self.core.counts.values())

    def reset_counts(self) -> None:
        self.core.counts.clear()

    @property
    def internal_errors(self) -> list[str]:
        return self.core.internal_errors
