"""The ``sim`` driver: an in-memory platform seeded from an estate file.

Registered in ``ftbridge.drivers`` like any third-party driver. It implements every capability
with platform-like rules (:mod:`ftbridge.sim.platform`) and fault injection (hosts or
datastores down, failing or slow operations, refused connections), keeps its state in a file
beside the estate so separate commands see one estate (``ftbridge sim reset`` starts over),
and checks on every step that no VM is left without a valid copy.

Its secondary mechanisms imitate the three real platforms' (same names, same rules), so the
demo estate shows a mixed estate without a hypervisor in sight.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from ftbridge.configtypes import ConfigPath, Secret
from ftbridge.drivers.base import (
    BackendInfo,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    HealthReport,
    MechanismRules,
    Operation,
    OperationStatus,
    OpState,
    SecondarySpec,
    StoragePlacement,
)
from ftbridge.errors import (
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    NotFound,
    UnsupportedOperation,
)
from ftbridge.estate import load_estates
from ftbridge.inventory import InventoryPart
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    FailureDomain,
    Host,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge.sim import platform as P
from ftbridge.sim.state import SimStore, seed_state

_ANY = None
MECHANISMS: dict[str, MechanismRules] = {
    "vsphere-ft": MechanismRules(
        name="vsphere-ft",
        description="lockstep FT secondary on another host (vSphere-like)",
        needs_other_host=True,
        host_must_mount=True,
        has_config=True,
        needs_metadata_datastore=True,
        blocks_primary_move=True,
        max_vms_per_host=4,
        max_vcpus_per_host=8,
        max_vcpus_per_vm=8,
        max_disks=16,
        max_secondaries_per_vm=1,
        rpo=0.0,  # lockstep: the secondary has every write the primary acknowledged
        rto=0.0,  # a takeover, not a restart
        hot_standby=True,  # a running secondary: its memory is held on its host already
    ),
    "pve-replication": MechanismRules(
        name="pve-replication",
        description="ZFS storage replication to another node (pvesr-like)",
        primary_kinds=frozenset({"zfspool"}),
        secondary_kinds=frozenset({"zfspool"}),
        needs_other_host=True,
        host_must_mount=True,
        rpo=60.0,  # as the Proxmox driver declares: pvesr's shortest schedule is one minute
        rto=120.0,  # as the Proxmox driver declares: PVE HA's 120 s lock before recovery
    ),
    "pve-standby": MechanismRules(
        name="pve-standby",
        description="standby copy on a separate storage, refreshed on a schedule",
        refreshable=True,
        rto=300.0,  # as the Proxmox driver declares: ftbridge's estimate for starting a clone
    ),
    "ovirt-copy": MechanismRules(
        name="ovirt-copy",
        description="managed disk copies on another storage domain",
        refreshable=True,
        same_hosts=True,
        rto=300.0,  # the sim's figure for starting from a copied disk
    ),
    "sim-copy": MechanismRules(name="sim-copy", description="a generic copy on another datastore"),
}

FLAVOR_MECHANISMS = {
    "vsphere": ("vsphere-ft",),
    "proxmox": ("pve-replication", "pve-standby"),
    "ovirt": ("ovirt-copy",),
}

#: What each flavor's site can do: what the real driver it imitates declares. Proxmox VE and
#: oVirt keep a VM's config in the cluster (pmxcfs, the engine's database), not on a datastore,
#: so neither has move_vm; each plugin's tests compare these with its real driver.
FLAVOR_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "vsphere": frozenset(Capability),
    "proxmox": frozenset(Capability) - {Capability.MOVE_VM},
    "ovirt": frozenset(Capability) - {Capability.MOVE_VM},
}
#: flavors whose VMs keep their config file on a datastore (vSphere's .vmx)
CONFIG_ON_DATASTORE = frozenset({"vsphere", "generic"})


class SimConfig(DriverConfig):
    estate: ConfigPath = Field(description="estate file (TOML or JSON)")
    name: str | None = Field(default=None, description="estate in the file; default: the endpoint name")
    state: ConfigPath | None = Field(
        default=None, description="state database (SQLite); default: beside the estate, <estate>.<name>.simstate.db"
    )
    busy_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long a change waits while another process holds the state for writing (then exit 9)",
    )
    keep_operations: int = Field(
        default=1000, ge=0, description="finished operations the platform remembers (every unfinished one is kept)"
    )
    op_seconds: float = Field(default=0.0, ge=0, description="how long each operation takes")
    sync_seconds: float = Field(
        default=0.0, ge=0, description="how long a new secondary stays syncing after its operation ends"
    )
    ha_seconds: float | None = Field(
        default=None,
        ge=0,
        description="the platform's HA restarts HA VMs this long after their host fails (unset: no HA)",
    )
    password: Secret | None = Field(default=None, description="checked against the estate's password_sha256")
    copies_age: bool = Field(
        default=False,
        description="point-in-time copies (refreshable mechanisms) age in real time: their lag is the time "
        "since they were taken, as on the real platforms (default: the lag stays as the estate gives it)",
    )


class SimDriver(Driver, StoragePlacement, Failover):
    """An estate in a file, with a hypervisor's manners."""

    name = "sim"
    api_versions = (2, 2)
    Config = SimConfig
    capabilities = frozenset(Capability)
    mechanisms = MECHANISMS
    default_concurrency = 8
    in_process = True  # the platform is this module, in the caller's threads

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        super().__init__(config, endpoint=endpoint)
        assert isinstance(config, SimConfig)
        self.cfg = config
        self.estate_name = config.name or endpoint
        self._store: SimStore | None = None

    # lifecycle --------------------------------------------------------------------------
    @staticmethod
    def state_path(cfg: SimConfig, estate_name: str) -> Path:
        return cfg.state or cfg.estate.with_name(f"{cfg.estate.stem}.{estate_name}.simstate.db")

    @staticmethod
    def legacy_state_path(cfg: SimConfig, estate_name: str) -> Path | None:
        """Where an older ftbridge kept this estate's state (a JSON file), to import once."""
        return None if cfg.state else cfg.estate.with_name(f"{cfg.estate.stem}.{estate_name}.simstate.json")

    def _new_store(self) -> SimStore:
        return SimStore(
            self.state_path(self.cfg, self.estate_name),
            busy_seconds=self.cfg.busy_seconds,
            legacy=self.legacy_state_path(self.cfg, self.estate_name),
        )

    def estate_identity(self) -> str:
        """The estate is its state file: every config naming that file reaches one estate."""
        return f"sim:{self.state_path(self.cfg, self.estate_name).resolve()}"

    def estate_lock_path(self) -> Path:
        """Beside the state file, so every process using this estate meets the same lock."""
        path = self.state_path(self.cfg, self.estate_name).resolve()
        return path.with_name(f".{path.stem}.estate-lock")

    def _attach(self) -> P.State:
        """Find (or seed) the state; no connection semantics, so faults can be set."""
        if self._store is None:
            if not self.state_path(self.cfg, self.estate_name).exists():
                load_estates(self.cfg.estate)  # a bad estate file is refused before any state file is made
            self._store = self._new_store()
        return self._store.seed(self._seed)

    def _seed(self) -> P.State:
        estates = load_estates(self.cfg.estate)
        if self.estate_name not in estates:
            raise ConfigError(
                f"{self.cfg.estate}: no estate named {self.estate_name!r} (has: {', '.join(estates) or 'none'})",
                endpoint=self.endpoint,
            )
        state = seed_state(estates[self.estate_name])
        state["seeded_at"] = time.time()  # copies_age: a seeded copy's lag grows from here
        if state["flavor"] not in CONFIG_ON_DATASTORE:
            for vm in state["vms"].values():
                vm["config_datastore"] = None  # the cluster keeps it, not a datastore
        return state

    def open(self) -> None:
        state = self._attach()
        if state["faults"].get("refuse_connections"):
            raise BackendUnavailable(f"sim://{self.estate_name}: connection refused", endpoint=self.endpoint)
        expected = state.get("password_sha256")
        if self.cfg.password is not None:
            secret = self.cfg.password.reveal(f"endpoints.{self.endpoint}.password")
            if expected and hashlib.sha256(secret.encode()).hexdigest() != expected:
                raise AuthenticationError("login rejected: wrong password", endpoint=self.endpoint)
        elif expected:
            raise AuthenticationError("login rejected: this estate needs a password", endpoint=self.endpoint)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()  # reconnects if used again (faults can be set on a closed driver)

    def probe(self) -> BackendInfo:
        with self._view() as state:
            flavor = state["flavor"]
        return BackendInfo(
            product="ftbridge sim",
            version="1",
            capabilities=self.site_capabilities({"flavor": flavor}),
            mechanisms=self.offered({"flavor": flavor}),
            details={"flavor": flavor},
        )

    def _flavor(self, state: P.State | None) -> str:
        if state is not None:
            return str(state["flavor"])
        with self._view() as now:
            return str(now["flavor"])

    def site_capabilities(self, state: P.State | None = None) -> frozenset[Capability]:
        return FLAVOR_CAPABILITIES.get(self._flavor(state), self.capabilities)

    def offered(self, state: P.State | None = None) -> tuple[str, ...]:
        return FLAVOR_MECHANISMS.get(self._flavor(state), tuple(MECHANISMS))

    # state access ---------------------------------------------------------------------
    def _opened(self) -> SimStore:
        if self._store is None:
            raise BackendUnavailable("driver is not open", endpoint=self.endpoint)
        return self._store

    @contextmanager
    def _view(self) -> Iterator[P.State]:
        """The last committed state, to read (never waits for a writer). The platform's HA acts
        first if it is due (a write; not on a state this process cannot write)."""
        store = self._opened()
        ha = self.cfg.ha_seconds
        if ha is not None and not store.read_only:
            with store.read() as state:
                due = P.ha_moves(state, time.time(), ha)
            if due:
                with self._mutate() as state:
                    P.ha_restarts(state, time.time(), ha)
        with store.read() as state:
            yield state

    @contextmanager
    def _mutate(self) -> Iterator[P.State]:
        """One platform operation, one transaction: lock, catch up, let the caller change the
        state, check the invariant on the VMs it touched, write what changed."""
        with self._opened().write() as state:
            try:
                yield state
            finally:
                P.check_invariant(state, list(state["vms"].touched))

    # inventory ----------------------------------------------------------------------------
    def inventory(self) -> InventoryPart:
        with self._view() as state:
            return self._inventory(state)

    def _inventory(self, state: P.State) -> InventoryPart:
        ep = self.endpoint
        hosts = tuple(
            Host(
                id=hid,
                name=h["name"],
                endpoint=ep,
                cluster=h["cluster"],
                state=P.host_state(state, hid),
                domain=FailureDomain(host=h["name"]),
                memory=h.get("memory", 0),
            )
            for hid, h in state["hosts"].items()
        )
        datastores = tuple(
            Datastore(
                id=did,
                name=d["name"],
                endpoint=ep,
                kind=d["kind"],
                shared=d["shared"],
                hosts=tuple(d["hosts"]),
                capacity=d["capacity"],
                free=d["free"],
                accessible=P.ds_up(state, did),
                domain=FailureDomain(datastore=d["name"]),
                content=None if d.get("content") is None else frozenset(d["content"]),
                thin=bool(d.get("thin", False)),
                reserve=int(d.get("reserve", 0)),
            )
            for did, d in state["datastores"].items()
        )
        names = {k: d["name"] for k, d in state["datastores"].items()}
        vms = tuple(self._vm(state, vid, v, names) for vid, v in state["vms"].items())
        networks = tuple(
            Network(
                id=nid,
                name=n["name"],
                endpoint=ep,
                kind=n["kind"],
                vlan=n.get("vlan"),
                hosts=tuple(n.get("hosts", ())),
            )
            for nid, n in state.get("networks", {}).items()
        )
        return InventoryPart(hosts, datastores, vms, networks)

    def _vm(self, state: P.State, vid: str, v: dict[str, Any], names: dict[str, str] | None = None) -> VM:
        if names is None:
            names = {k: d["name"] for k, d in state["datastores"].items()}
        now = time.time()
        disks = tuple(
            Disk(
                id=d["id"],
                size=d["size"],
                datastore=d["datastore"],
                path=f"[{names[d['datastore']]}] {v['name']}/{d['id']}.img",
                movable=d["movable"],
                kind=d["kind"],
                content=d.get("content", "images"),
                allocated=d.get("allocated"),
                thin=bool(d.get("thin", False)),
                shared_by=tuple(d.get("shared_by", ())),
            )
            for d in v["disks"]
        )
        sizes = {d.id: d.size for d in disks}
        secs = []
        for s in v["secondaries"]:
            readable = all(P.ds_up(state, x) for x in s["disks"].values()) and (
                s["host"] is None or P.host_up(state, s["host"])
            )
            st = SecondaryState(P.sec_state(state, vid, s, now)) if readable else SecondaryState.BROKEN
            reason = (
                "its storage or host is not available"
                if not readable
                else "the initial sync failed (fault fail_sync)"
                if st is SecondaryState.BROKEN and s["state"] == "syncing"
                else ""
            )
            synced = s.get("last_sync")
            lag = s["lag"]
            rules = MECHANISMS.get(s["mechanism"])
            if st is SecondaryState.IN_SYNC and rules is not None and rules.refreshable:
                # a point-in-time copy is as old as its last sync: one this sim made ages from
                # then; a seeded one from when the estate was seeded, with copies_age set
                if synced is not None:
                    lag = max(0.0, now - float(synced))
                elif self.cfg.copies_age and state.get("seeded_at") is not None:
                    lag = (lag or 0.0) + max(0.0, now - float(state["seeded_at"]))
            secs.append(
                Secondary(
                    id=s["id"],
                    mechanism=s["mechanism"],
                    host=s["host"],
                    state=st,
                    last_sync=synced,
                    lag=lag,
                    config_datastore=s["config_datastore"],
                    metadata_datastore=s["metadata_datastore"],
                    disks=tuple(
                        SecondaryDisk(
                            disk=k, datastore=x, size=sizes.get(k, 0), path=f"[{names[x]}] {v['name']}-sec/{k}.img"
                        )
                        for k, x in s["disks"].items()
                    ),
                    missing=tuple(s.get("missing", ())),
                    reason=reason,
                )
            )
        power = PowerState(v["power"])
        if v["host"] and not P.host_up(state, v["host"]):
            power = PowerState.UNKNOWN  # the platform cannot tell what a lost host runs
        cfg = v["config_datastore"] if state["flavor"] in CONFIG_ON_DATASTORE else None
        return VM(
            id=vid,
            name=v["name"],
            endpoint=self.endpoint,
            host=v["host"],
            power=power,
            disks=disks,
            config_datastore=cfg,
            config_path=f"[{names[cfg]}] {v['name']}/{v['name']}.cfg" if cfg else "",
            secondaries=tuple(secs),
            tags=tuple(v["tags"]),
            vcpus=v["vcpus"],
            memory=v["memory"],
            ha=v["ha"],
            cluster=v.get("cluster"),
            uuid=v.get("uuid", ""),
            managed_by=v.get("managed_by"),
            depends_on=tuple(Dependency(**x) for x in v.get("depends_on", ())),
            nics=tuple(Nic(**x) for x in v.get("nics", ())),
        )

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        with self._view() as state:
            return self._vm(state, vm_id, P.vm_of(state, vm_id)).secondaries

    # operations --------------------------------------------------------------------------
    def _start(
        self, state: P.State, kind: str, vm_id: str, params: dict[str, Any], effect_now: dict[str, int] | None = None
    ) -> Operation:
        """Register an operation; faults decided now, effect applied when it completes."""
        fault = P.decide_fault(state, vm_id, kind)
        if fault == "retryable":
            raise BackendUnavailable(f"sim: injected transient failure of {kind} on {vm_id}", endpoint=self.endpoint)
        state["seq"] += 1
        op_id = f"sim-{state['estate']}-{state['seq']}"
        self._forget_old_operations(state)
        for ds_id, size in (effect_now or {}).items():
            state["datastores"][ds_id]["free"] -= size
        state["ops"][op_id] = {
            "kind": kind,
            "vm": vm_id,
            "params": params,
            "started": time.time(),
            "duration": self.cfg.op_seconds + float(state["faults"]["slow"]),
            "state": "running",
            "fail": fault == "permanent",
            "reserved": effect_now or {},
            "message": "",
            "result": {},
            "seq": state["seq"],
        }
        return Operation(id=op_id, endpoint=self.endpoint, kind=kind, vm=vm_id)

    def _forget_old_operations(self, state: P.State) -> None:
        """Retention: keep every unfinished operation and the last ``keep_operations`` finished
        ones (a poll of an older one is NotFound, as on a platform whose task list rolled over).
        Pruned in batches, so the cost per operation stays flat."""
        keep = self.cfg.keep_operations
        ops = state["ops"]
        if len(ops) <= keep + max(keep // 4, 16):
            return
        done = sorted((int(o.get("seq", k.rsplit("-", 1)[-1])), k) for k, o in ops.items() if o["state"] != "running")
        for _, k in done[: max(0, len(done) - keep)]:
            del ops[k]

    def poll(self, op: Operation) -> OperationStatus:
        with self._view() as now:
            rec = now["ops"].get(op.id)
            if rec is None:
                raise NotFound(f"no operation {op.id}", endpoint=self.endpoint)
            elapsed = time.time() - rec["started"]
            if rec["state"] == "running" and (elapsed < rec["duration"] or now["faults"].get("hold")):
                # still running: a read, not a write (polls are the commonest call by far)
                return OperationStatus(OpState.RUNNING, progress=min(elapsed / max(rec["duration"], 1e-9), 0.99))
        with self._mutate() as state:
            rec = state["ops"].get(op.id)
            if rec is None:
                raise NotFound(f"no operation {op.id}", endpoint=self.endpoint)
            if rec["state"] == "running":
                self._finish(state, rec)
            return OperationStatus(
                OpState(rec["state"]), progress=1.0, message=rec["message"], retryable=False, result=rec["result"]
            )

    def pending_operations(self, vm_id: str) -> list[Operation]:
        with self._view() as state:
            return [
                Operation(id=k, endpoint=self.endpoint, kind=o["kind"], vm=o["vm"])
                for k, o in state["ops"].items()
                if o["vm"] == vm_id and o["state"] == "running"
            ]

    def _finish(self, state: P.State, rec: dict[str, Any]) -> None:
        if rec["fail"]:
            for ds_id, size in rec["reserved"].items():
                state["datastores"][ds_id]["free"] += size
            vm = state["vms"].get(rec["vm"])
            if rec["kind"] in ("protect", "reprotect") and vm:
                sid = rec["params"]["secondary_id"]
                vm["secondaries"] = [s for s in vm["secondaries"] if s["id"] != sid]
            rec.update(state="failed", message=f"sim: injected permanent failure of {rec['kind']}")
            return
        getattr(self, f"_done_{rec['kind']}")(state, rec)
        rec["state"] = "succeeded"

    def _free(self, state: P.State, ds_id: str, size: int) -> None:
        if ds_id in state["datastores"]:
            state["datastores"][ds_id]["free"] += size

    # placement ---------------------------------------------------------------------------
    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        with self._mutate() as state:
            size = P.check_move(state, vm_id, [disk_id], datastore_id, None, self.mechanisms)
            return self._start(
                state, "move_disk", vm_id, {"disks": [disk_id], "target": datastore_id}, {datastore_id: size}
            )

    def move_vm(self, vm_id: str, datastore_id: str, *, host_id: str | None = None) -> Operation:
        with self._mutate() as state:
            if Capability.MOVE_VM not in self.site_capabilities(state):
                raise UnsupportedOperation(
                    f"a {state['flavor']} site keeps VM configs in the cluster: move the disks one by one",
                    endpoint=self.endpoint,
                )
            vm = P.vm_of(state, vm_id)
            if host_id is not None and not P.host_up(state, host_id):
                raise Conflict(f"host {host_id} is not up", endpoint=self.endpoint)
            ids = [d["id"] for d in vm["disks"] if d["movable"]]
            size = P.check_move(state, vm_id, ids, datastore_id, host_id, self.mechanisms)
            return self._start(
                state,
                "move_vm",
                vm_id,
                {"disks": ids, "target": datastore_id, "host": host_id, "config": True},
                {datastore_id: size},
            )

    def _done_move_disk(self, state: P.State, rec: dict[str, Any]) -> None:
        vm = state["vms"][rec["vm"]]
        target = rec["params"]["target"]
        for d in vm["disks"]:
            if d["id"] in rec["params"]["disks"] and d["datastore"] != target:
                self._free(state, d["datastore"], d["size"])  # source deleted only now
                d["datastore"] = target
        if rec["params"].get("config"):
            vm["config_datastore"] = target
        if rec["params"].get("host"):
            vm["host"] = rec["params"]["host"]

    _done_move_vm = _done_move_disk

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("protect", vm_id, spec)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("reprotect", vm_id, spec)

    def _protect(self, kind: str, vm_id: str, spec: SecondarySpec) -> Operation:
        with self._mutate() as state:
            need = P.check_protect(state, vm_id, spec, {m: self.mechanisms[m] for m in self.offered(state)})
            vm = state["vms"][vm_id]
            state["seq"] += 1
            sid = f"{vm_id}-sec{state['seq']}"
            op = self._start(state, kind, vm_id, {"secondary_id": sid, "spec": spec.to_dict()}, need)
            vm["secondaries"].append(
                {
                    "id": sid,
                    "mechanism": spec.mechanism,
                    "host": spec.host,
                    "state": "syncing",
                    "lag": None,
                    "config_datastore": spec.config_datastore,
                    "metadata_datastore": spec.metadata_datastore,
                    "disks": dict(spec.disks),
                }
            )
            state["ops"][op.id]["result"] = {"secondary_id": sid}
            return op

    def _done_protect(self, state: P.State, rec: dict[str, Any]) -> None:
        """The copy exists now; it is in sync once its initial sync ends (``sync_seconds``), or
        broken if the VM is set to fail while syncing (fault ``fail_sync``)."""
        now = time.time()
        for s in state["vms"][rec["vm"]]["secondaries"]:
            if s["id"] == rec["params"]["secondary_id"]:
                s["state"], s["lag"] = "syncing", None
                s["sync_until"] = now + self.cfg.sync_seconds
                s["last_sync"] = now + self.cfg.sync_seconds

    _done_reprotect = _done_protect

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        with self._mutate() as state:
            if op := P.busy(state, vm_id):
                raise Conflict(f"VM {vm_id} is locked by operation {op}", endpoint=self.endpoint)
            P.check_unprotect(state, vm_id, secondary_id)
            return self._start(state, "unprotect", vm_id, {"secondary_id": secondary_id})

    def _done_unprotect(self, state: P.State, rec: dict[str, Any]) -> None:
        vm = state["vms"][rec["vm"]]
        sid = rec["params"]["secondary_id"]
        if not any(s["id"] == sid for s in vm["secondaries"]):
            return
        P.check_unprotect(state, rec["vm"], sid)
        sizes = {d["id"]: d["size"] for d in vm["disks"]}
        for s in vm["secondaries"]:
            if s["id"] == sid:
                for did, ds_id in s["disks"].items():
                    self._free(state, ds_id, sizes.get(did, 0))
        vm["secondaries"] = [s for s in vm["secondaries"] if s["id"] != sid]

    # failover ----------------------------------------------------------------------------
    def health(self) -> HealthReport:
        with self._view() as state:
            return HealthReport(
                hosts={h: P.host_state(state, h) for h in state["hosts"]},
                datastores={d: P.ds_up(state, d) for d in state["datastores"]},
                quorum=None,
            )

    def _secondary(self, state: P.State, vm_id: str, sec_id: str) -> dict[str, Any]:
        vm = P.vm_of(state, vm_id)
        sec = next((s for s in vm["secondaries"] if s["id"] == sec_id), None)
        if sec is None:
            raise NotFound(f"VM {vm['name']} has no secondary {sec_id!r}", endpoint=self.endpoint)
        if not all(P.ds_up(state, x) for x in sec["disks"].values()):
            raise Conflict(
                f"secondary {sec_id} of {vm['name']} is on an inaccessible datastore", endpoint=self.endpoint
            )
        now = P.sec_state(state, vm_id, sec, time.time())
        if now not in ("in_sync", "stale"):
            raise Conflict(f"secondary {sec_id} of {vm['name']} is {now}", endpoint=self.endpoint)
        result: dict[str, Any] = sec
        return result

    def _run_host(self, state: P.State, sec: dict[str, Any], host_id: str | None) -> str:
        for cand in (host_id, sec["host"], *sorted(state["hosts"])):
            if (
                cand
                and P.host_up(state, cand)
                and all(cand in state["datastores"][x]["hosts"] for x in sec["disks"].values())
            ):
                return str(cand)
        raise Conflict("no host that is up mounts the secondary's datastores", endpoint=self.endpoint)

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        with self._mutate() as state:
            vm = P.vm_of(state, vm_id)
            if op := P.busy(state, vm_id):
                raise Conflict(f"VM {vm['name']} is locked by operation {op}", endpoint=self.endpoint)
            sec = self._secondary(state, vm_id, secondary_id)
            if P.may_run(state, vm) and not force:
                raise Conflict(
                    f"VM {vm['name']} may still run on host {P.host_name(state, vm['host'])}: refusing to promote "
                    "(fence it or force)",
                    endpoint=self.endpoint,
                )
            host = self._run_host(state, sec, host_id)
            return self._start(state, "promote", vm_id, {"secondary_id": secondary_id, "host": host})

    def _done_promote(self, state: P.State, rec: dict[str, Any]) -> None:
        vm = state["vms"][rec["vm"]]
        sid = rec["params"]["secondary_id"]
        sec = next((s for s in vm["secondaries"] if s["id"] == sid), None)
        if sec is None:
            return
        for d in vm["disks"]:
            self._free(state, d["datastore"], d["size"])  # the failed primary's files are gone
            d["datastore"] = sec["disks"][d["id"]]
        vm["config_datastore"] = sec["config_datastore"] or next(iter(sec["disks"].values()))
        vm["host"] = rec["params"]["host"]
        vm["power"] = "on"
        vm["secondaries"] = [s for s in vm["secondaries"] if s["id"] != sid]

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        with self._mutate() as state:
            sec = self._secondary(state, vm_id, secondary_id)
            host = self._run_host(state, sec, host_id)
            state["seq"] += 1
            test_id = f"test-{vm_id}-{state['seq']}"
            op = self._start(
                state, "test_failover", vm_id, {"secondary_id": secondary_id, "host": host, "test_id": test_id}
            )
            state["ops"][op.id]["result"] = {"test_id": test_id, "host": host}
            return op

    def _done_test_failover(self, state: P.State, rec: dict[str, Any]) -> None:
        p = rec["params"]
        state["tests"][p["test_id"]] = {
            "vm": rec["vm"],
            "secondary": p["secondary_id"],
            "host": p["host"],
            "network": "isolated",
            "power": "on",
        }

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        with self._mutate() as state:
            return self._start(state, "cleanup_test", vm_id, {"test_id": test_id})

    def _done_cleanup_test(self, state: P.State, rec: dict[str, Any]) -> None:
        state["tests"].pop(rec["params"]["test_id"], None)

    def fence(self, vm_id: str) -> Operation:
        """Power the VM off through its host; a host that does not answer cannot do that, and
        the sim has no power management to fence it otherwise."""
        with self._mutate() as state:
            vm = P.vm_of(state, vm_id)
            if vm["host"] in state["faults"].get("hosts_unreachable", ()):
                raise Conflict(
                    f"cannot fence {vm['name']}: its host {P.host_name(state, vm['host'])} is not responding "
                    "and has no power management",
                    endpoint=self.endpoint,
                )
            return self._start(state, "fence", vm_id, {})

    def _done_fence(self, state: P.State, rec: dict[str, Any]) -> None:
        state["vms"][rec["vm"]]["power"] = "off"

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        with self._mutate() as state:
            vm = P.vm_of(state, vm_id)
            if op := P.busy(state, vm_id):
                raise Conflict(f"VM {vm['name']} is locked by operation {op}", endpoint=self.endpoint)
            if vm["power"] == "on" and P.host_up(state, vm["host"]):
                return self._start(state, "restart", vm_id, {"host": vm["host"]})
            if P.may_run(state, vm):
                raise Conflict(
                    f"VM {vm['name']} may still run on host {P.host_name(state, vm['host'])}: fence it first",
                    endpoint=self.endpoint,
                )
            stores = P.needed_datastores(vm)
            gone = [state["datastores"][d]["name"] for d in stores if not P.ds_up(state, d)]
            if gone:
                raise Conflict(
                    f"VM {vm['name']}: its primary storage {', '.join(gone)} is not accessible", endpoint=self.endpoint
                )
            host = P.restart_host(state, stores, host_id)
            if host is None:
                raise Conflict(f"VM {vm['name']}: no host that is up mounts all its datastores", endpoint=self.endpoint)
            return self._start(state, "restart", vm_id, {"host": host})

    def _done_restart(self, state: P.State, rec: dict[str, Any]) -> None:
        vm = state["vms"][rec["vm"]]
        vm["host"], vm["power"] = rec["params"]["host"], "on"
        rec["result"] = {"host": rec["params"]["host"]}

    # extras ------------------------------------------------------------------------------
    def ex_inject(self, **faults: Any) -> dict[str, Any]:
        """Set faults: hosts_down (failed: the platform reports them down), hosts_unreachable
        (partitioned: they keep running their VMs), datastores_down (lists of ids), fail_rate
        (0..1, retryable), fail_permanent (VM ids or "vm:kind"), fail_sync (VM ids whose new
        secondaries break while syncing), hold_sync (VM ids whose new secondaries stay syncing
        until the fault is lifted), slow (seconds added per operation), seed, refuse_connections,
        hold (True: running operations stay running until set False again). Works on a closed
        driver; returns the faults now in force."""
        self._attach()
        with self._mutate() as state:
            for key, empty in (
                ("hosts_down_at", {}),
                ("hosts_unreachable", []),
                ("fail_sync", []),
                ("hold_sync", []),
                ("hold", False),
            ):
                state["faults"].setdefault(key, empty)
            for key, value in faults.items():
                if key not in state["faults"] or key == "hosts_down_at":
                    known = ", ".join(k for k in state["faults"] if k != "hosts_down_at")
                    raise ConfigError(f"unknown fault {key!r} (known: {known})")
                state["faults"][key] = value
            now = time.time()
            at = state["faults"]["hosts_down_at"]
            for h in state["faults"]["hosts_down"]:
                at.setdefault(h, now)  # when it failed: the platform's HA counts from there
            for h in list(at):
                if h not in state["faults"]["hosts_down"]:
                    del at[h]
            return dict(state["faults"])

    def ex_violations(self) -> list[str]:
        """Every invariant violation the platform saw (tests assert this stays empty)."""
        if self._store is None:
            self._attach()
        with self._view() as state:
            return list(state["violations"])

    def ex_reset(self) -> bool:
        """Forget the state: the next open() seeds the estate afresh."""
        if self._store is not None:
            self._store.close()
            self._store = None
        return self._new_store().remove()

    def ex_tests(self) -> dict[str, Any]:
        """Test-failover instances still present (should be none after cleanup)."""
        with self._view() as state:
            return dict(state["tests"])
