"""``proxmox``: the ftbridge driver for Proxmox VE 8 and 9, over proxmoxer.

One endpoint is one PVE cluster (any node's API speaks for all). Importing this module imports
no SDK; :mod:`ftbridge_proxmox.client` loads proxmoxer when the driver opens.

Operation handles survive a crash of the caller: a task's UPID (polled at
``/nodes/{node}/tasks/{upid}/status`` until ``stopped``, then judged by ``exitstatus``), or for
work PVE does without a task (a replication job's first sync, an HA recovery, the steps of a
test failover) a handle whose ``data`` says what to look at. :meth:`poll` needs nothing else,
so a fresh driver instance resumes any of them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ftbridge.drivers import (
    BackendInfo,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    HealthReport,
    InventoryPart,
    Operation,
    OperationStatus,
    OpState,
    SecondarySpec,
    StoragePlacement,
)
from ftbridge.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailable,
    Conflict,
    NotFound,
    UnsupportedOperation,
)
from ftbridge.model import Secondary
from ftbridge_proxmox.client import PveClient
from ftbridge_proxmox.collect import (
    PLACED_KINDS,
    Guest,
    View,
    build_datastores,
    build_hosts,
    build_networks,
    build_vm,
    classify,
    host_state,
    node_fenced,
    parse_affinity,
    split_datastore,
    target_refusal,
)
from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.diskline import DriveLine, parse_config
from ftbridge_proxmox.mechanisms import (
    MECHANISMS,
    REPLICATION,
    ha_preference_name,
    parse_job_id,
    parse_standby_id,
    replication_plan,
    standby_description,
    standby_id,
    standby_name,
    standby_refusal,
    standby_source,
    test_name,
    test_source,
)
from ftbridge_proxmox.tasks import TASK_KINDS, parse_upid, task_status

log = logging.getLogger(__name__)
#: the comment of an HA resource ftbridge adds only to restart a guest (removed afterwards)
RESTART_COMMENT = "ftbridge: restart from a fenced node"


class ProxmoxDriver(Driver, StoragePlacement, Failover):
    """Proxmox VE: shared storage for primaries, pvesr replicas or standby clones as secondaries."""

    name = "proxmox"
    api_versions = (2, 2)  # the driver contract it is written for (ftbridge.drivers.API_VERSION)
    Config = ProxmoxConfig
    capabilities = frozenset(
        {
            Capability.INVENTORY,
            Capability.MOVE_DISK,
            Capability.PROTECT,
            Capability.UNPROTECT,
            Capability.REPLICATION_STATUS,
            Capability.HEALTH,
            Capability.PROMOTE,
            Capability.TEST_FAILOVER,
            Capability.REPROTECT,
            Capability.FENCE,
            Capability.RESTART,
        }
    )
    mechanisms = MECHANISMS
    default_concurrency = 4

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        super().__init__(config, endpoint=endpoint)
        assert isinstance(config, ProxmoxConfig)
        self.cfg = config
        self._client: PveClient | None = None
        self._version: dict[str, Any] = {}

    # lifecycle ---------------------------------------------------------------------------------
    def open(self) -> None:
        client = PveClient(self.cfg, endpoint=self.endpoint)
        try:
            self._version = client.connect()
        except Exception:
            client.close()
            raise
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def probe(self) -> BackendInfo:
        version = self._version or self._c.get("version")
        return BackendInfo(
            product="Proxmox VE",
            version=str(version.get("version", "")),
            capabilities=self.capabilities,
            details={
                "release": version.get("release", ""),
                "repoid": version.get("repoid", ""),
                "flavor": "proxmox",
                "mechanisms": list(self.mechanisms),
                "ha_placement": "rules" if self._major >= 9 else "groups",
            },
        )

    @property
    def _c(self) -> PveClient:
        if self._client is None:
            raise BackendUnavailable("driver is not open", endpoint=self.endpoint)
        return self._client

    @property
    def _major(self) -> int:
        try:
            return int(str(self._version.get("version", "8")).split(".")[0])
        except ValueError:
            return 8

    @property
    def ex_api_calls(self) -> int:
        """HTTP requests this driver has sent (for benchmarks)."""
        return self._client.calls if self._client is not None else 0

    # reads ---------------------------------------------------------------------------------------
    def _view(self, *, guest: int | None = None) -> View:
        """The cluster-wide reads: a handful of calls whatever the number of VMs."""
        c = self._c
        view = View(endpoint=self.endpoint, now=time.time())
        for item in c.get("cluster/status") or []:
            if item.get("type") == "cluster":
                view.cluster_name = item.get("name")
                view.quorate = bool(int(item.get("quorate", 0) or 0))
        view.read_resources(c.get("cluster/resources") or [])
        view.storage_cfg = {str(s["storage"]): dict(s) for s in c.get("storage") or []}
        view.jobs = [
            dict(j) for j in c.get("cluster/replication") or [] if guest is None or int(j.get("guest", 0)) == guest
        ]
        sources = sorted(
            {str(view.guests[int(j["guest"])]["node"]) for j in view.jobs if int(j.get("guest", 0)) in view.guests}
        )
        for node in sources:
            if view.online(node):
                try:
                    params = {"guest": guest} if guest is not None else {}
                    for st in c.get(f"nodes/{node}/replication", **params) or []:
                        view.job_state[str(st["id"])] = dict(st)
                except BackendUnavailable as exc:
                    log.debug("%s: replication state of node %s unreadable: %s", self.endpoint, node, exc)
        view.ha = {str(r["sid"]): dict(r) for r in c.get("cluster/ha/resources") or []}
        if view.ha:
            if self._major >= 9:
                view.affinity = parse_affinity(view.ha, [], c.get("cluster/ha/rules") or [])
            else:
                view.affinity = parse_affinity(view.ha, c.get("cluster/ha/groups") or [], [])
        self._read_ha_manager(view)
        return view

    def _read_ha_manager(self, view: View) -> None:
        """The HA manager's status: it alone proves an offline node fenced (DOWN, not
        UNREACHABLE), and it says which nodes are in maintenance."""
        try:
            view.ha_manager = dict(self._c.get("cluster/ha/status/manager_status") or {})
        except (NotFound, UnsupportedOperation) as exc:
            log.debug("%s: no HA manager status: %s", self.endpoint, exc)

    def _read_networks(self, view: View) -> None:
        """Bridges and OVS bridges of each node that answers, with the SDN vnets applied there
        (``type=any_bridge``), and the vnets' VLAN tags (``/cluster/sdn/vnets``)."""
        for node in sorted(view.node_status):
            if not view.online(node):
                continue
            try:
                items = self._c.get(f"nodes/{node}/network", type="any_bridge") or []
            except BackendUnavailable as exc:
                log.debug("%s: networks of node %s unreadable: %s", self.endpoint, node, exc)
                continue
            view.bridges[node] = {str(i["iface"]): dict(i) for i in items if i.get("iface")}
        try:
            view.vnets = {str(v["vnet"]): dict(v) for v in self._c.get("cluster/sdn/vnets") or []}
        except (NotFound, UnsupportedOperation) as exc:
            log.debug("%s: no SDN vnets: %s", self.endpoint, exc)

    def _read_configs(self, view: View, vmids: list[int]) -> dict[int, Guest]:
        """Each guest's config, read concurrently; an unreadable one becomes a warning."""

        def read(vmid: int) -> Guest:
            r = view.guests[vmid]
            node, kind = str(r["node"]), "lxc" if r.get("type") == "lxc" else "qemu"
            if not view.online(node):
                return Guest(vmid, r, None, f"config unreadable: node {node} is {view.node_status.get(node)}")
            try:  # the current config: pending changes do not run yet (PVE/AbstractConfig.pm)
                return Guest(vmid, r, dict(self._c.get(f"nodes/{node}/{kind}/{vmid}/config", current=True) or {}))
            except AuthenticationError:
                raise
            except NotFound:
                return Guest(vmid, r, None, "config vanished while reading (moved or removed meanwhile)")
            except BackendError as exc:
                return Guest(vmid, r, None, f"config unreadable: {exc.message}")

        if len(vmids) <= 1:
            return {v: read(v) for v in vmids}
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="pve-config") as pool:
            return dict(zip(vmids, pool.map(read, vmids), strict=True))

    def inventory(self) -> InventoryPart:
        view = self._view()
        self._read_networks(view)
        vms, standbys, tests = classify(view)
        wanted = vms + [s for src in vms for s in standbys.get(src, [])]
        guests = self._read_configs(view, wanted)
        built = [build_vm(view, guests[v], [guests[s] for s in standbys.get(v, [])], tests.get(v, [])) for v in vms]
        datastores = build_datastores(
            view,
            {n for b in built for n in b.passthrough_nodes},
            any(b.shared_passthrough for b in built),
            {x for b in built for x in b.unconfigured},
        )
        networks = build_networks(view, [n for b in built for n in b.nics])
        return InventoryPart(build_hosts(view), datastores, tuple(b.vm for b in built), networks)

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        vmid = _vmid(vm_id, self.endpoint)
        view = self._view(guest=vmid)
        if vmid not in view.guests:
            raise NotFound(f"no VM with VMID {vmid}", endpoint=self.endpoint)
        _, standbys, _ = classify(view)
        guests = self._read_configs(view, [vmid, *standbys.get(vmid, [])])
        return build_vm(view, guests[vmid], [guests[s] for s in standbys.get(vmid, [])], []).vm.secondaries

    # helpers ---------------------------------------------------------------------------------------
    def _guests(self) -> dict[int, dict[str, Any]]:
        return {
            int(r["vmid"]): dict(r)
            for r in self._c.get("cluster/resources", type="vm") or []
            if r.get("type") in ("qemu", "lxc")
        }

    def _locate(self, vm_id: str) -> dict[str, Any]:
        vmid = _vmid(vm_id, self.endpoint)
        g = self._guests().get(vmid)
        if g is None:
            raise NotFound(f"no VM with VMID {vmid}", endpoint=self.endpoint)
        return g

    def _nodes(self) -> dict[str, bool]:
        return {
            str(r["node"]): r.get("status") == "online" for r in self._c.get("cluster/resources", type="node") or []
        }

    def _drives(self, g: Mapping[str, Any]) -> tuple[DriveLine, ...]:
        kind = "lxc" if g.get("type") == "lxc" else "qemu"
        conf = self._c.get(f"nodes/{g['node']}/{kind}/{g['vmid']}/config", current=True) or {}
        return parse_config(conf).drives

    def _storage_on(self, node: str, sid: str) -> dict[str, Any]:
        """The storage as ``node`` sees it; Conflict when it is not there or not active."""
        items = self._c.get(f"nodes/{node}/storage", storage=sid) or []
        if not items:
            raise Conflict(f"storage '{sid}' is not available on node {node}", endpoint=self.endpoint)
        st = dict(items[0])
        if not int(st.get("active", 0) or 0):
            raise Conflict(f"storage '{sid}' is not active on node {node}", endpoint=self.endpoint)
        return st

    def _op(self, op_id: str, kind: str, vm: str, /, **data: str) -> Operation:
        return Operation(id=op_id, endpoint=self.endpoint, kind=kind, vm=vm, data=data)

    # placement ---------------------------------------------------------------------------------------
    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        g = self._locate(vm_id)
        node, vmid = str(g["node"]), int(g["vmid"])
        sid, at = split_datastore(datastore_id)
        if at is not None and at != node:
            raise Conflict(
                f"datastore {datastore_id} is local to node {at}, but VM {vmid} runs on {node}: "
                "move_disk cannot change nodes",
                endpoint=self.endpoint,
            )
        drive = next((d for d in self._drives(g) if d.key == disk_id), None)
        if drive is None:
            raise NotFound(f"VM {vmid} has no disk {disk_id!r}", endpoint=self.endpoint)
        if not drive.movable:
            raise Conflict(
                f"disk {disk_id} of VM {vmid} ({drive.volume}) cannot be moved: {drive.kind}", endpoint=self.endpoint
            )
        if drive.storage == sid:
            return self._op(
                f"noop-move-{vmid}-{disk_id}", "move_disk", vm_id, mode="done", message=f"{disk_id} is already on {sid}"
            )
        lxc = g.get("type") == "lxc"
        if lxc and g.get("status") == "running":  # pve-container PVE/API2/LXC.pm move_volume
            raise Conflict(
                f"cannot move volumes of a running container (CT {vmid}): stop it first", endpoint=self.endpoint
            )
        storages = {str(x["storage"]): dict(x) for x in self._c.get("storage") or []}
        refusal = target_refusal(sid, storages.get(sid), node=node, content=drive.content)
        if refusal:
            raise Conflict(f"{disk_id} of VM {vmid} cannot go to {datastore_id}: {refusal}", endpoint=self.endpoint)
        st = self._storage_on(node, sid)
        if int(st.get("avail", 0) or 0) < (drive.size or 0):
            raise Conflict(
                f"storage '{sid}' on node {node} has {int(st.get('avail', 0)) >> 30} GiB free; "
                f"{disk_id} needs {(drive.size or 0) >> 30} GiB",
                endpoint=self.endpoint,
            )
        if lxc:
            upid = self._c.post(
                f"nodes/{node}/lxc/{vmid}/move_volume",
                volume=disk_id,
                storage=sid,
                delete=True,
                bwlimit=self.cfg.bwlimit,
            )
        else:
            upid = self._c.post(
                f"nodes/{node}/qemu/{vmid}/move_disk", disk=disk_id, storage=sid, delete=True, bwlimit=self.cfg.bwlimit
            )
        return self._op(str(upid), "move_disk", vm_id, mode="task", node=node)

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("protect", vm_id, spec)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """After a failover: a new secondary where ``spec`` says (the same two mechanisms)."""
        return self._protect("reprotect", vm_id, spec)

    def _protect(self, kind: str, vm_id: str, spec: SecondarySpec) -> Operation:
        if spec.mechanism not in self.mechanisms:
            raise Conflict(
                f"mechanism {spec.mechanism!r} is not offered by the proxmox driver "
                f"(offered: {', '.join(self.mechanisms)})",
                endpoint=self.endpoint,
            )
        g = self._locate(vm_id)
        drives = list(self._drives(g))
        if spec.mechanism == REPLICATION:
            return self._protect_replication(kind, vm_id, g, drives, spec)
        return self._protect_standby(kind, vm_id, g, drives, spec)

    def _protect_replication(
        self, kind: str, vm_id: str, g: dict[str, Any], drives: list[DriveLine], spec: SecondarySpec
    ) -> Operation:
        node, vmid = str(g["node"]), int(g["vmid"])
        ep = self.endpoint
        storages = {str(s["storage"]): dict(s) for s in self._c.get("storage") or []}
        copied, refusal = replication_plan(vmid, drives, storages)
        if refusal:
            raise Conflict(f"pvesr cannot replicate VM {vmid}: {refusal}", endpoint=ep)
        at_nodes = {split_datastore(ds)[1] for ds in spec.disks.values()} - {None}
        target = spec.host or (next(iter(at_nodes)) if len(at_nodes) == 1 else None)
        if not target:
            raise Conflict("pve-replication needs the target node (spec.host, or STORAGE@NODE datastores)", endpoint=ep)
        if target == node:
            raise Conflict(f"pve-replication needs another node than the VM's own ({node})", endpoint=ep)
        # the copy holds each copied volume on the same storage id on the target node, and each
        # shared volume where it is (pvesr skips it: the target reaches the same volume)
        placed = {d.key: d for d in drives if d.kind in PLACED_KINDS}
        want = {k: f"{placed[k].storage}@{target}" for k in copied if k in placed}
        want |= {
            k: d.storage
            for k, d in placed.items()
            if d.storage is not None and int(storages.get(d.storage, {}).get("shared", 0) or 0)
        }
        for key, ds in sorted(spec.disks.items()):
            if key not in placed:
                raise Conflict(f"VM {vmid} has no disk {key!r} to replicate", endpoint=ep)
            if key not in want:
                raise Conflict(
                    f"pvesr does not copy {key} of VM {vmid} ({placed[key].volume}: replicate=0 or "
                    "not a volume): leave it out of the spec; the copy lacks it",
                    endpoint=ep,
                )
            if ds != want[key]:
                raise Conflict(
                    f"pvesr copies {key} to the same storage on the target node: {want[key]}, not {ds}", endpoint=ep
                )
        missing = {k for k in copied if k in placed} - set(spec.disks)
        if missing:
            raise Conflict(
                f"the spec must place the replicated disks of VM {vmid}: {sorted(missing)} (got {sorted(spec.disks)})",
                endpoint=ep,
            )
        if not self._nodes().get(target, False):
            raise Conflict(f"target node {target} is not online", endpoint=ep)
        for sid in sorted({str(d.storage) for d in drives if d.key in copied}):
            allowed = storages[sid].get("nodes")
            if allowed and target not in str(allowed).split(","):
                raise Conflict(f"storage '{sid}' is not available on node '{target}'", endpoint=ep)
            self._storage_on(target, sid)  # the replica is received there
        jobs = [j for j in self._c.get("cluster/replication") or [] if int(j.get("guest", 0)) == vmid]
        if any(j.get("target") == target for j in jobs):
            raise Conflict(
                f"VM {vmid} already has a replication job to {target} (PVE allows one per target)", endpoint=ep
            )
        used = {int(j.get("jobnum", -1)) for j in jobs}
        job_id = f"{vmid}-{next(n for n in range(10**6) if n not in used)}"
        self._c.post(
            "cluster/replication",
            id=job_id,
            type="local",
            target=target,
            schedule=self.cfg.replication_schedule,
            comment=f"ftbridge: replica of a primary on {node}",
        )
        self._c.post(f"nodes/{node}/replication/{job_id}/schedule_now")
        self._ensure_ha(g, [str(j["target"]) for j in jobs] + [target])
        return self._op(job_id, kind, vm_id, mode="repl-sync", node=node, secondary_id=job_id)

    def _protect_standby(
        self, kind: str, vm_id: str, g: dict[str, Any], drives: list[DriveLine], spec: SecondarySpec
    ) -> Operation:
        node, vmid = str(g["node"]), int(g["vmid"])
        ep = self.endpoint
        refusal = standby_refusal(lxc=g.get("type") == "lxc", running=g.get("status") == "running", drives=drives)
        if refusal:
            raise Conflict(f"no standby clone of VM {vmid}: {refusal}", endpoint=ep)
        drives = [d for d in drives if d.kind in PLACED_KINDS]
        keys = {d.key for d in drives}
        if set(spec.disks) != keys:
            raise Conflict(
                f"the spec must place every disk of VM {vmid}: {sorted(keys)} (got {sorted(spec.disks)})", endpoint=ep
            )
        targets = set(spec.disks.values())
        if len(targets) != 1:
            raise Conflict(
                "a PVE clone writes every disk to one storage: give one datastore for all disks "
                f"(got {sorted(targets)})",
                endpoint=ep,
            )
        sid, at = split_datastore(targets.pop())
        storages = {str(s["storage"]): dict(s) for s in self._c.get("storage") or []}
        if sid not in storages:
            raise NotFound(f"no storage '{sid}'", endpoint=ep)
        nodes = self._nodes()
        if at and spec.host and spec.host != at:
            raise Conflict(f"datastore {sid}@{at} is local to {at}, not to host {spec.host}", endpoint=ep)
        all_shared = all(int(storages.get(d.storage or "", {}).get("shared", 0) or 0) for d in drives)
        clone_node = at or spec.host
        if clone_node is None:
            allowed = [n.strip() for n in str(storages[sid].get("nodes") or "").split(",") if n.strip()]
            cands = [n for n, up in sorted(nodes.items()) if up and (not allowed or n in allowed)]
            # keep the standby's config on another node than the VM, so one node loss takes not both;
            # PVE clones to another node only from shared storage
            others = [n for n in cands if n != node] if all_shared else []
            clone_node = others[0] if others else node
        if clone_node != node and not all_shared:
            raise Conflict(f"a clone to another node ({clone_node}) needs the VM on shared storage", endpoint=ep)
        for where in dict.fromkeys((node, clone_node)):  # clone_vm checks both nodes
            refusal = target_refusal(sid, storages[sid], node=where, content="images")
            if refusal:
                raise Conflict(f"no standby clone of VM {vmid} on {sid}: {refusal}", endpoint=ep)
        if clone_node != node and not int(storages[sid].get("shared", 0) or 0):
            raise Conflict(
                f"no standby clone of VM {vmid} on {sid}: can't clone to non-shared storage '{sid}'", endpoint=ep
            )
        st = self._storage_on(clone_node, sid)
        need = sum(d.size or 0 for d in drives)
        if int(st.get("avail", 0) or 0) < need:
            raise Conflict(
                f"storage '{sid}' on node {clone_node} has {int(st.get('avail', 0)) >> 30} GiB free; "
                f"the copy needs {need >> 30} GiB",
                endpoint=ep,
            )
        newid = int(self._c.get("cluster/nextid"))
        upid = self._c.post(
            f"nodes/{node}/qemu/{vmid}/clone",
            newid=newid,
            name=standby_name(vmid),
            full=True,
            storage=sid,
            target=clone_node if clone_node != node else None,
            description=standby_description(vmid, str(g.get("name", vmid)), int(time.time())),
            bwlimit=self.cfg.bwlimit,
        )
        self._ensure_ha(g, None)
        return self._op(str(upid), kind, vm_id, mode="task", node=node, secondary_id=standby_id(newid))

    def _ensure_ha(self, g: Mapping[str, Any], replica_nodes: list[str] | None) -> None:
        """Put a protected VM under PVE HA, preferring its replica nodes for recovery."""
        if not self.cfg.ha_on_protect:
            return
        sid = f"{'ct' if g.get('type') == 'lxc' else 'vm'}:{g['vmid']}"
        try:
            res = dict(self._c.get(f"cluster/ha/resources/{sid}") or {})
        except NotFound:
            self._c.post(
                "cluster/ha/resources",
                sid=sid,
                comment="ftbridge: protected VM",
                state="started" if g.get("status") == "running" else "stopped",
            )
            res = {}
        if replica_nodes is not None:
            self._set_ha_preference(int(g["vmid"]), sid, str(g["node"]), replica_nodes, res)

    def _set_ha_preference(
        self, vmid: int, sid: str, node: str, replicas: list[str], res: Mapping[str, Any], *, only: bool = False
    ) -> None:
        """Non-strict node preference: ``node`` first, then the replica nodes (none: removed;
        ``only``: ``node`` alone).

        HA picks among all nodes otherwise, and a node without a replica cannot start a VM on
        local storage. An administrator's own group or rule is left alone.
        """
        name = ha_preference_name(vmid)
        if only:
            replicas = [node]
        nodes = ",".join([f"{node}:2"] + [f"{t}:1" for t in sorted(set(replicas)) if t != node])
        if self._major >= 9:
            rules = [
                r
                for r in self._c.get("cluster/ha/rules", type="node-affinity") or []
                if sid in str(r.get("resources", "")).split(",")
            ]
            if any(r.get("rule") != name for r in rules):
                return
            if rules:
                self._c.delete(f"cluster/ha/rules/{name}")
            if replicas:
                self._c.post(
                    "cluster/ha/rules",
                    rule=name,
                    type="node-affinity",
                    resources=sid,
                    nodes=nodes,
                    strict=False,
                    comment="ftbridge: prefer the replica nodes",
                )
            return
        group = res.get("group")
        if group and group != name:
            return
        if group == name:
            self._c.put(f"cluster/ha/resources/{sid}", delete="group")
            self._c.delete(f"cluster/ha/groups/{name}")
        if replicas:
            self._c.post(
                "cluster/ha/groups",
                group=name,
                nodes=nodes,
                restricted=False,
                nofailback=True,
                comment="ftbridge: prefer the replica nodes",
            )
            self._c.put(f"cluster/ha/resources/{sid}", group=name)

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        vmid = _vmid(vm_id, self.endpoint)
        if (clone := parse_standby_id(secondary_id)) is not None:
            c = self._guests().get(clone)
            if c is None or standby_source(c.get("name")) != vmid:
                raise NotFound(f"VM {vmid} has no standby {secondary_id}", endpoint=self.endpoint)
            if c.get("status") == "running":
                raise Conflict(f"standby {clone} is running (promoted?): not removing it", endpoint=self.endpoint)
            upid = self._c.delete(f"nodes/{c['node']}/qemu/{clone}", purge=True, **{"destroy-unreferenced-disks": True})
            return self._op(str(upid), "unprotect", vm_id, mode="task", node=str(c["node"]))
        job = parse_job_id(secondary_id)
        if job is None or job[0] != vmid:
            raise NotFound(f"VM {vmid} has no secondary {secondary_id!r}", endpoint=self.endpoint)
        conf = dict(self._c.get(f"cluster/replication/{secondary_id}") or {})
        target = str(conf.get("target", ""))
        keep = not self._nodes().get(target, False)  # a dead target cannot clean up; keep its copy
        self._c.delete(f"cluster/replication/{secondary_id}", keep=keep or None)
        g = self._guests().get(vmid)
        if g is not None and self.cfg.ha_on_protect:
            rest = [
                str(j["target"])
                for j in self._c.get("cluster/replication") or []
                if int(j.get("guest", 0)) == vmid and not j.get("remove_job")
            ]
            sid = f"{'ct' if g.get('type') == 'lxc' else 'vm'}:{vmid}"
            try:
                res = dict(self._c.get(f"cluster/ha/resources/{sid}") or {})
                self._set_ha_preference(vmid, sid, str(g["node"]), rest, res)
            except NotFound:
                pass
        return self._op(secondary_id, "unprotect", vm_id, mode="repl-remove")

    # failover -------------------------------------------------------------------------------------
    def _node_view(self) -> View:
        """Nodes, quorum, storages' state and the HA manager: what host states are made of."""
        c = self._c
        view = View(endpoint=self.endpoint, now=time.time())
        for item in c.get("cluster/status") or []:
            if item.get("type") == "cluster":
                view.cluster_name = item.get("name")
                view.quorate = bool(int(item.get("quorate", 0) or 0))
            elif item.get("type") == "node":
                view.node_status[str(item["name"])] = "online" if int(item.get("online", 0) or 0) else "offline"
        view.storage_cfg = {str(s["storage"]): dict(s) for s in c.get("storage") or []}
        view.read_resources(c.get("cluster/resources", type="storage") or [])
        self._read_ha_manager(view)
        return view

    def health(self) -> HealthReport:
        view = self._node_view()
        hosts = {n: host_state(view, n) for n in sorted(view.node_status)}
        datastores = {d.id: d.accessible for d in build_datastores(view)}
        notes = []
        for item in self._c.get("cluster/ha/status/current") or []:
            if item.get("type") in ("quorum", "master"):
                notes.append(f"ha {item['type']}: {item.get('status')}")
            elif item.get("type") == "service" and item.get("state") not in (
                "started",
                "stopped",
                "disabled",
                "ignored",
            ):
                notes.append(f"ha service {item.get('sid')} on {item.get('node')}: {item.get('state')}")
        return HealthReport(hosts=hosts, datastores=datastores, quorum=view.quorate, notes=tuple(notes))

    def _primary_alive(self, g: Mapping[str, Any], nodes: Mapping[str, bool]) -> bool:
        """May the primary still run? Node up, guest running and every disk's storage active
        there; or its node offline without PVE reporting it fenced (it may run unseen)."""
        node = str(g["node"])
        if not nodes.get(node):
            view = self._node_view()
            return view.node_status.get(node) == "offline" and not node_fenced(view, node)
        if g.get("status") != "running":
            return False
        sids = {d.storage for d in self._drives(g) if d.storage and d.kind in PLACED_KINDS}
        active = {str(s["storage"]) for s in self._c.get(f"nodes/{node}/storage") or [] if int(s.get("active", 0) or 0)}
        return sids <= active

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        """Run the VM from its secondary; refuses while the primary runs unless ``force``.

        pve-replication: the guest's config moves to the replica node: by migration when its
        node still answers, else by PVE HA (the guest is put under HA with the replica node
        preferred; HA fences the dead node and recovers the guest there). pve-standby: the
        standby is renamed to the VM's name and started; the original's HA resource is disabled
        first. The result names ``vm_id`` (the standby's VMID after a standby promotion) and
        ``host``.
        """
        g = self._locate(vm_id)
        vmid, node = int(g["vmid"]), str(g["node"])
        nodes = self._nodes()
        ep = self.endpoint
        if (clone := parse_standby_id(secondary_id)) is not None:
            return self._promote_standby(vm_id, g, clone, nodes, host_id, force)
        job = parse_job_id(secondary_id)
        if job is None or job[0] != vmid:
            raise NotFound(f"VM {vmid} has no secondary {secondary_id!r}", endpoint=ep)
        conf = dict(self._c.get(f"cluster/replication/{secondary_id}") or {})
        target = str(conf.get("target", ""))
        primary = _recorded_primary(conf.get("comment"))
        if primary and node != primary and target == primary and nodes.get(node) and g.get("status") == "running":
            # pvesr reversed the job: the VM already runs from its replica (PVE HA recovered it)
            return self._op(
                f"promote-{vmid}",
                "promote",
                vm_id,
                mode="done",
                host=node,
                message=f"VM {vmid} already runs on {node} from its replica",
            )
        if host_id and host_id != target:
            raise Conflict(f"the replica of {secondary_id} lives on {target}, not {host_id}", endpoint=ep)
        if not nodes.get(target):
            raise Conflict(f"replica node {target} is not online", endpoint=ep)
        if not force and self._primary_alive(g, nodes):
            raise Conflict(
                f"VM {vmid} may still run on {node}: refusing to promote (fence it first, or force)", endpoint=ep
            )
        if nodes.get(node):
            kind = "lxc" if g.get("type") == "lxc" else "qemu"
            running = g.get("status") == "running"
            if kind == "qemu":
                upid = self._c.post(
                    f"nodes/{node}/qemu/{vmid}/migrate",
                    target=target,
                    online=running or None,
                    **{"with-local-disks": True},
                )
            else:
                upid = self._c.post(f"nodes/{node}/lxc/{vmid}/migrate", target=target, restart=running or None)
            return self._op(
                str(upid),
                "promote",
                vm_id,
                mode="place",
                node=node,
                target=target,
                vmid=str(vmid),
                host=target,
                want="running" if running else "any",
            )
        # the node is gone: HA fences it and recovers the guest, preferring the replica node
        sid = f"{'ct' if g.get('type') == 'lxc' else 'vm'}:{vmid}"
        try:
            res = dict(self._c.get(f"cluster/ha/resources/{sid}") or {})
            if res.get("state") not in ("started", "enabled"):
                self._c.put(f"cluster/ha/resources/{sid}", state="started")
        except NotFound:
            self._c.post("cluster/ha/resources", sid=sid, state="started", comment="ftbridge: promoted")
            res = {}
        jobs = [str(j["target"]) for j in self._c.get("cluster/replication") or [] if int(j.get("guest", 0)) == vmid]
        self._set_ha_preference(vmid, sid, target, [t for t in jobs if t != target] + [node], res)
        return self._op(
            f"ha-{sid}", "promote", vm_id, mode="place", target=target, vmid=str(vmid), host=target, want="running"
        )

    def _promote_standby(
        self, vm_id: str, g: Mapping[str, Any], clone: int, nodes: Mapping[str, bool], host_id: str | None, force: bool
    ) -> Operation:
        vmid = int(g["vmid"])
        ep = self.endpoint
        c = self._guests().get(clone)
        if c is None or standby_source(c.get("name")) != vmid:
            raise NotFound(f"VM {vmid} has no standby {standby_id(clone)}", endpoint=ep)
        cnode = str(c["node"])
        if host_id and host_id != cnode:
            raise Conflict(f"standby {clone} is defined on {cnode}; start it there (or migrate it first)", endpoint=ep)
        if not nodes.get(cnode):
            raise Conflict(f"standby {clone}'s node {cnode} is offline", endpoint=ep)
        if not force and self._primary_alive(g, nodes):
            raise Conflict(
                f"VM {vmid} may still run on {g['node']}: refusing to promote (fence it first, or force)", endpoint=ep
            )
        sid = f"{'ct' if g.get('type') == 'lxc' else 'vm'}:{vmid}"
        try:
            self._c.get(f"cluster/ha/resources/{sid}")
            self._c.put(f"cluster/ha/resources/{sid}", state="disabled")  # HA must not start it as well
        except NotFound:
            pass
        self._c.put(
            f"nodes/{cnode}/qemu/{clone}/config",
            name=str(g.get("name") or f"vm{vmid}"),
            onboot=True,
            description=f"ftbridge: promoted from the standby copy of VM {vmid} at {int(time.time())}\n",
        )
        upid = self._c.post(f"nodes/{cnode}/qemu/{clone}/status/start")
        return self._op(
            str(upid),
            "promote",
            vm_id,
            mode="place",
            node=cnode,
            target=cnode,
            vmid=str(clone),
            vm_id=str(clone),
            host=cnode,
            want="running",
        )

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        """Start a copy of the standby with every NIC link down, under a temporary VMID.

        Production is not touched: the VM, its standby and their HA state stay as they are.
        Supported for pve-standby; a pvesr replica cannot be started through the PVE API
        without moving the VM itself (that needs a ZFS clone on the replica node).
        """
        vmid = _vmid(vm_id, self.endpoint)
        clone = parse_standby_id(secondary_id)
        if clone is None:
            if parse_job_id(secondary_id):
                raise UnsupportedOperation(
                    "test failover of a pvesr replica is not possible through the PVE API (it needs a ZFS "
                    "clone of the replica on the target node); protect the VM with pve-standby to test it",
                    endpoint=self.endpoint,
                )
            raise NotFound(f"VM {vmid} has no secondary {secondary_id!r}", endpoint=self.endpoint)
        c = self._guests().get(clone)
        if c is None or standby_source(c.get("name")) != vmid:
            raise NotFound(f"VM {vmid} has no standby {secondary_id}", endpoint=self.endpoint)
        cnode = str(c["node"])
        if not self._nodes().get(cnode):
            raise Conflict(f"standby {clone}'s node {cnode} is offline", endpoint=self.endpoint)
        newid = int(self._c.get("cluster/nextid"))
        upid = self._c.post(
            f"nodes/{cnode}/qemu/{clone}/clone",
            newid=newid,
            name=test_name(vmid),
            full=True,
            target=host_id if host_id and host_id != cnode else None,
            description=f"ftbridge test failover of VM {vmid} from standby {clone}; removed by cleanup_test\n",
        )
        return self._op(
            str(upid),
            "test_failover",
            vm_id,
            mode="test",
            node=host_id or cnode,
            task_node=cnode,
            test_vmid=str(newid),
            test_id=str(newid),
        )

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        vmid = _vmid(vm_id, self.endpoint)
        if not test_id.isdigit():
            raise NotFound(f"no test instance {test_id!r}", endpoint=self.endpoint)
        t = self._guests().get(int(test_id))
        op = self._op(f"cleanup-{test_id}", "cleanup_test", vm_id, mode="cleanup", test_vmid=test_id, source=str(vmid))
        if t is None:
            return op
        if test_source(t.get("name")) != vmid:
            raise Conflict(
                f"refusing to remove VM {test_id} ({t.get('name')}): not a test instance of VM {vmid}",
                endpoint=self.endpoint,
            )
        self._cleanup_step(op)
        return op

    def fence(self, vm_id: str) -> Operation:
        """Make sure the primary does not run, and only succeed once PVE proves it.

        Node online: stop the guest (an HA-managed one by requesting ``disabled``, so HA does not
        start it again) and succeed once PVE reports it stopped. Node offline: only PVE's HA
        stack can prove a node runs nothing, by fencing it (pve-ha-manager: the node's
        watchdog resets it once it loses its agent lock). So: done when PVE reports the node
        fenced; waiting while the node's HA LRM held its lock (the lock lifetime ends within
        120 s, and then HA has fenced it); failed when it held none (no HA service ran there,
        so no watchdog is armed, and PVE has no power fencing): power the node off yourself,
        then force.
        """
        g = self._locate(vm_id)
        vmid, node = int(g["vmid"]), str(g["node"])
        view = self._node_view()
        if not view.online(node):
            if node_fenced(view, node):
                return self._op(
                    f"fence-{vmid}",
                    "fence",
                    vm_id,
                    mode="done",
                    message=f"PVE's HA manager fenced node {node}: VM {vmid} does not run",
                )
            lrm = ((view.ha_manager or {}).get("lrm_status") or {}).get(node) or {}
            if lrm.get("state") == "active" and lrm.get("mode", "active") == "active":
                return self._op(f"fence-{vmid}", "fence", vm_id, mode="await-fence", node=node, vmid=str(vmid))
            return self._op(
                f"fence-{vmid}",
                "fence",
                vm_id,
                mode="refused",
                message=f"node {node} is unreachable and PVE cannot fence it: its HA LRM holds no "
                "lock (no HA service ran there), so no watchdog resets it, and PVE has no power "
                f"fencing; make sure node {node} is off, then force the promotion",
            )
        sid = f"{'ct' if g.get('type') == 'lxc' else 'vm'}:{vmid}"
        try:
            self._c.get(f"cluster/ha/resources/{sid}")
            self._c.put(f"cluster/ha/resources/{sid}", state="disabled")
            return self._op(f"fence-{vmid}", "fence", vm_id, mode="stopped", vmid=str(vmid))
        except NotFound:
            pass
        if g.get("status") != "running":
            return self._op(f"fence-{vmid}", "fence", vm_id, mode="done", message="already stopped")
        kind = "lxc" if g.get("type") == "lxc" else "qemu"
        upid = self._c.post(f"nodes/{node}/{kind}/{vmid}/status/stop")
        return self._op(str(upid), "fence", vm_id, mode="task", node=node)

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        """Start the VM from its own primary files on a surviving node (``host_id``, or PVE's choice).

        Its node online: start it there; to another node, an offline migration first (PVE moves
        a stopped guest whose volumes the target reaches). Its node offline: PVE keeps the
        guest's config in that node's directory of pmxcfs, and only its HA manager moves it,
        after fencing the node (there is no API call that moves a config). So restart puts the
        guest under PVE HA, state ``started``, preferring ``host_id``, and waits for HA to
        recover it; an HA resource added only for this is removed once the guest runs. The
        guest's volumes cannot be checked first: the API reads a config only through its own
        node (``load_config`` reads ``nodes/<node>/...``, proxied there); HA fails the recovery
        (the operation fails) when no node can start it.

        Refuses (Conflict) when PVE does not report the node fenced: HA would take the free
        lock of a node whose LRM was idle and start a second instance while the first may still
        run there. To another node while its own answers: refuses a volume not on shared storage
        active there (a node-local disk, a pinned pass-through device). Idempotent: a running
        guest succeeds at once; the result names ``host``.
        """
        g = self._locate(vm_id)
        vmid, node = int(g["vmid"]), str(g["node"])
        ep = self.endpoint
        view = self._node_view()
        if host_id is not None and not view.online(host_id):
            raise Conflict(f"node {host_id} is not online: VM {vmid} cannot restart there", endpoint=ep)
        if view.online(node) and g.get("status") == "running":
            return self._op(
                f"restart-{vmid}", "restart", vm_id, mode="done", host=node, message=f"VM {vmid} already runs on {node}"
            )
        kind = "lxc" if g.get("type") == "lxc" else "qemu"
        if view.online(node) and host_id in (None, node):
            upid = self._c.post(f"nodes/{node}/{kind}/{vmid}/status/start")
            return self._op(
                str(upid),
                "restart",
                vm_id,
                mode="place",
                node=node,
                target=node,
                vmid=str(vmid),
                host=node,
                want="running",
            )
        target = host_id
        if view.online(node):
            assert target is not None
            for d in self._drives(g):
                if d.kind not in PLACED_KINDS:
                    continue
                if d.storage is None and not d.shared:
                    raise Conflict(
                        f"VM {vmid} cannot start on {target}: {d.key} is a device or path of node {node}", endpoint=ep
                    )
                if d.storage is not None and (not view.shared(d.storage) or not view.available(d.storage, target)):
                    raise Conflict(
                        f"VM {vmid} cannot start on {target}: {d.key} ({d.volume}) is on storage "
                        f"'{d.storage}', which is not active there",
                        endpoint=ep,
                    )
            upid = self._c.post(f"nodes/{node}/{kind}/{vmid}/migrate", target=target)
            return self._op(
                str(upid), "restart", vm_id, mode="restart-move", node=node, target=target, vmid=str(vmid), kind=kind
            )
        if not node_fenced(view, node):
            raise Conflict(
                f"node {node} of VM {vmid} is unreachable but PVE does not report it fenced: its guests "
                "may still run there, and PVE HA would start a second instance; fence it first",
                endpoint=ep,
            )
        sid = f"{'ct' if kind == 'lxc' else 'vm'}:{vmid}"
        added = "0"
        try:
            res = dict(self._c.get(f"cluster/ha/resources/{sid}") or {})
        except NotFound:
            # added disabled, so HA recovers it only once the preferred node is set
            self._c.post("cluster/ha/resources", sid=sid, state="disabled", comment=RESTART_COMMENT)
            res, added = {"state": "disabled"}, "1"
        if target:
            self._set_ha_preference(vmid, sid, target, [], res, only=True)
        if res.get("state") not in ("started", "enabled"):
            self._c.put(f"cluster/ha/resources/{sid}", state="started")
        return self._op(
            f"restart-{sid}",
            "restart",
            vm_id,
            mode="ha-restart",
            vmid=str(vmid),
            sid=sid,
            dead=node,
            target=target or "",
            added=added,
        )

    # handles ------------------------------------------------------------------------------------------
    def poll(self, op: Operation) -> OperationStatus:
        data = dict(op.data)
        mode = data.get("mode") or ("task" if parse_upid(op.id) else "")
        result: dict[str, str] = {k: data[k] for k in ("secondary_id", "vm_id", "test_id", "host") if k in data}
        if mode == "done":
            return OperationStatus(OpState.SUCCEEDED, 1.0, data.get("message", ""), result=result)
        if mode == "task":
            return task_status(self._task(op.id, data.get("node")), result=result)
        if mode == "repl-sync":
            return self._poll_sync(op, data, result)
        if mode == "repl-remove":
            try:
                self._c.get(f"cluster/replication/{op.id}")
            except NotFound:
                return OperationStatus(OpState.SUCCEEDED, 1.0)
            return OperationStatus(OpState.RUNNING, 0.5, "pvesr removes the job and its replica")
        if mode == "place":
            return self._poll_place(op, data, result)
        if mode == "stopped":
            g = self._guests().get(int(data["vmid"]))
            if g is None or g.get("status") == "stopped":
                return OperationStatus(OpState.SUCCEEDED, 1.0)
            return OperationStatus(OpState.RUNNING, 0.5, "HA is stopping it")
        if mode == "test":
            return self._poll_test(op, data, result)
        if mode == "refused":
            return OperationStatus(OpState.FAILED, 1.0, data.get("message", "refused"))
        if mode == "await-fence":
            return self._poll_fence(data)
        if mode == "ha-restart":
            return self._poll_ha_restart(data)
        if mode == "restart-move":
            return self._poll_restart_move(op, data)
        if mode == "cleanup":
            return self._cleanup_step(op)
        raise NotFound(f"{op.id!r} is not a handle of the proxmox driver", endpoint=self.endpoint)

    def _task(self, upid: str, node: str | None) -> dict[str, Any]:
        parsed = parse_upid(upid)
        if parsed is None:
            raise NotFound(f"{upid!r} is not a PVE task id (UPID)", endpoint=self.endpoint)
        return dict(self._c.get(f"nodes/{node or parsed.node}/tasks/{upid}/status") or {})

    def _poll_sync(self, op: Operation, data: dict[str, str], result: dict[str, str]) -> OperationStatus:
        try:
            st = dict(self._c.get(f"nodes/{data['node']}/replication/{op.id}/status") or {})
        except NotFound:
            return OperationStatus(OpState.FAILED, 1.0, f"replication job {op.id} is gone")
        if int(st.get("fail_count", 0) or 0):
            return OperationStatus(
                OpState.FAILED, 1.0, f"first sync of {op.id} failed: {st.get('error', '?')}", retryable=True
            )
        if int(st.get("last_sync", 0) or 0):
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=result)
        return OperationStatus(OpState.RUNNING, 0.6 if st.get("pid") else 0.2, "waiting for the first sync")

    def _poll_place(self, op: Operation, data: dict[str, str], result: dict[str, str]) -> OperationStatus:
        if parse_upid(op.id):
            st = task_status(self._task(op.id, data.get("node")), running_progress=0.4)
            if st.state is not OpState.SUCCEEDED:
                return st
        g = self._guests().get(int(data["vmid"]))
        if g is None:
            return OperationStatus(OpState.FAILED, 1.0, f"VM {data['vmid']} vanished")
        if g.get("hastate") == "error":
            return OperationStatus(OpState.FAILED, 1.0, f"PVE HA put VM {data['vmid']} in error state")
        want = data.get("want", "running")
        if g.get("node") == data["target"] and (want == "any" or g.get("status") == want):
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=result)
        if g.get("node") != data["target"] and g.get("status") == "running" and not parse_upid(op.id):
            return OperationStatus(
                OpState.SUCCEEDED,
                1.0,
                f"HA recovered it on {g.get('node')}",
                result={**result, "host": str(g.get("node"))},
            )
        return OperationStatus(OpState.RUNNING, 0.7, f"waiting for VM {data['vmid']} to run on {data['target']}")

    def _poll_fence(self, data: dict[str, str]) -> OperationStatus:
        """Waiting for PVE's HA to report an offline node fenced."""
        node = data["node"]
        view = self._node_view()
        if view.online(node):
            return OperationStatus(
                OpState.FAILED,
                1.0,
                f"node {node} is back before PVE fenced it: VM {data['vmid']} may run there; fence again",
                retryable=True,
            )
        if node_fenced(view, node):
            return OperationStatus(OpState.SUCCEEDED, 1.0, f"PVE's HA manager fenced node {node}")
        return OperationStatus(
            OpState.RUNNING,
            0.5,
            f"waiting for PVE's HA manager to fence node {node} (its "
            "watchdog resets it; the agent lock expires within 120 s)",
        )

    def _poll_ha_restart(self, data: dict[str, str]) -> OperationStatus:
        """PVE's HA recovers the guest off the fenced node; then ftbridge's own HA resource goes."""
        vmid, sid = int(data["vmid"]), data["sid"]
        g = self._guests().get(vmid)
        if g is None:
            return OperationStatus(OpState.FAILED, 1.0, f"VM {vmid} vanished")
        if g.get("hastate") == "error":
            return OperationStatus(OpState.FAILED, 1.0, f"PVE HA could not start VM {vmid} on any node (error state)")
        if g.get("node") == data["dead"] or g.get("status") != "running":
            return OperationStatus(OpState.RUNNING, 0.5, f"waiting for PVE HA to recover VM {vmid}")
        if data.get("added") == "1":
            try:
                res = dict(self._c.get(f"cluster/ha/resources/{sid}") or {})
                if res.get("comment") == RESTART_COMMENT:
                    self._set_ha_preference(vmid, sid, str(g["node"]), [], res)
                    self._c.delete(f"cluster/ha/resources/{sid}")
            except NotFound:
                pass
        return OperationStatus(
            OpState.SUCCEEDED, 1.0, f"VM {vmid} runs on {g['node']}", result={"host": str(g["node"])}
        )

    def _poll_restart_move(self, op: Operation, data: dict[str, str]) -> OperationStatus:
        """An offline migration to the chosen node, then a start there."""
        vmid, target = int(data["vmid"]), data["target"]
        g = self._guests().get(vmid)
        if g is None:
            return OperationStatus(OpState.FAILED, 1.0, f"VM {vmid} vanished")
        if g.get("node") != target:
            st = task_status(self._task(op.id, data.get("node")), running_progress=0.3)
            if st.state is OpState.FAILED:
                return st
            return OperationStatus(OpState.RUNNING, 0.3, f"moving VM {vmid} to {target}")
        if g.get("status") == "running":
            return OperationStatus(OpState.SUCCEEDED, 1.0, f"VM {vmid} runs on {target}", result={"host": target})
        if not self._c.get(f"nodes/{target}/tasks", vmid=vmid, source="active"):
            try:
                self._c.post(f"nodes/{target}/{data['kind']}/{vmid}/status/start")
            except Conflict as exc:  # it started meanwhile ("already running"): the next poll sees it
                log.debug("%s: start of VM %s: %s", self.endpoint, vmid, exc)
        return OperationStatus(OpState.RUNNING, 0.7, f"starting VM {vmid} on {target}")

    def _poll_test(self, op: Operation, data: dict[str, str], result: dict[str, str]) -> OperationStatus:
        """Clone done, then every NIC link down, then start: each step checked on the platform."""
        st = task_status(self._task(op.id, data.get("task_node")), running_progress=0.3)
        if st.state is not OpState.SUCCEEDED:
            return st
        tid, node = int(data["test_vmid"]), data["node"]
        conf = dict(self._c.get(f"nodes/{node}/qemu/{tid}/config") or {})
        isolated = {k: _link_down(str(v)) for k, v in conf.items() if k.startswith("net") and k[3:].isdigit()}
        changed = {k: v for k, v in isolated.items() if v != conf[k]}
        if changed:
            self._c.put(f"nodes/{node}/qemu/{tid}/config", **changed)
        status = dict(self._c.get(f"nodes/{node}/qemu/{tid}/status/current") or {})
        if status.get("status") == "running":
            return OperationStatus(OpState.SUCCEEDED, 1.0, "test instance runs with every link down", result=result)
        active = self._c.get(f"nodes/{node}/tasks", vmid=tid, source="active") or []
        if active:
            return OperationStatus(OpState.RUNNING, 0.8, "starting the test instance")
        done = self._c.get(f"nodes/{node}/tasks", vmid=tid, typefilter="qmstart", limit=1) or []
        if done and done[0].get("status") not in ("OK", None):
            return OperationStatus(
                OpState.FAILED, 1.0, f"test instance {tid} failed to start: {done[0]['status']}", result=result
            )
        self._c.post(f"nodes/{node}/qemu/{tid}/status/start")
        return OperationStatus(OpState.RUNNING, 0.7, "starting the test instance")

    def _cleanup_step(self, op: Operation) -> OperationStatus:
        """One step towards "the test instance is gone": wait, stop, or destroy."""
        tid = int(op.data["test_vmid"])
        t = self._guests().get(tid)
        if t is None:
            return OperationStatus(OpState.SUCCEEDED, 1.0, "test instance removed")
        if test_source(t.get("name")) != int(op.data.get("source", op.vm)):
            raise Conflict(f"VM {tid} is not a test instance of VM {op.vm}", endpoint=self.endpoint)
        node = str(t["node"])
        if self._c.get(f"nodes/{node}/tasks", vmid=tid, source="active"):
            return OperationStatus(OpState.RUNNING, 0.5, "waiting for the test instance's task")
        if t.get("status") == "running":
            self._c.post(f"nodes/{node}/qemu/{tid}/status/stop")
            return OperationStatus(OpState.RUNNING, 0.3, "stopping the test instance")
        self._c.delete(f"nodes/{node}/qemu/{tid}", purge=True, **{"destroy-unreferenced-disks": True})
        return OperationStatus(OpState.RUNNING, 0.7, "removing the test instance")

    def pending_operations(self, vm_id: str) -> list[Operation]:
        """The guest's running tasks on its node. A node that is offline answers nothing (the API
        proxies task lists to it): nothing that ran there can be found, or waited for."""
        g = self._locate(vm_id)
        node = str(g["node"])
        if not self._nodes().get(node):
            return []
        out = []
        for t in self._c.get(f"nodes/{node}/tasks", vmid=int(g["vmid"]), source="active") or []:
            kind = TASK_KINDS.get(str(t.get("type")), str(t.get("type")))
            out.append(self._op(str(t["upid"]), kind, vm_id, mode="task", node=node))
        return out


def _vmid(vm_id: str, endpoint: str) -> int:
    text = str(vm_id)
    if not text.isdigit() or not 100 <= int(text) <= 999_999_999:
        raise NotFound(f"no VM {vm_id!r} (PVE VM ids are numbers from 100)", endpoint=endpoint)
    return int(text)


def _recorded_primary(comment: Any) -> str | None:
    """The node a job ftbridge created was protecting (kept in the job's comment)."""
    m = re.search(r"primary on ([A-Za-z0-9][A-Za-z0-9-]*)", str(comment or ""))
    return m.group(1) if m else None


def _link_down(net: str) -> str:
    """A ``netN`` line with ``link_down=1`` (the guest sees its cable pulled)."""
    parts = [p for p in net.split(",") if not p.startswith("link_down=")]
    return ",".join(parts + ["link_down=1"])


__all__ = ["ProxmoxDriver"]
