"""The ``vsphere`` driver: vCenter 7 and 8 through pyVmomi.

Every long operation is one vCenter task and its moref is the :class:`Operation` id, so a
fresh driver (after a crash) polls it through the PropertyCollector. Importing this module
imports no SDK; :mod:`ftbridge_vsphere.client` loads pyVmomi at :meth:`VsphereDriver.open`.

Decisions worth knowing:

* **FT and storage moves.** vSphere cannot move an FT VM's storage while FT is on. ``move_vm``
  and ``move_disk`` refuse such a VM with :class:`Conflict`; the ``vsphere-ft`` rules declare
  ``blocks_primary_move``, so the planner sequences unprotect -> move -> protect with each
  step journaled. :meth:`VsphereDriver.ex_move_ft_vm` runs the same three steps in one call
  for scripts (not journaled).
* **Protect** checks FT's limits first (8 vCPUs and 16 disks per VM; 4 FT VMs and 8 FT vCPUs
  per host, primaries and secondaries alike) and every placement rule, with a Conflict that
  says which, before it asks vCenter (CreateSecondaryVMEx_Task with a complete spec).
  vSphere FT keeps *one* secondary, so protecting a VM that has one replaces it
  break-before-make: FT off (waited for), then the new secondary (the operation handle); the
  planner's later unprotect of the old one finds it gone. The core's MechanismRules cannot
  say "one per VM" yet, so the planner plans make-before-break; this keeps its plans working.
* **Promote** is MakePrimaryVM_Task: the VM keeps its id and runs from the secondary's host
  and files; FT then waits for a new secondary (``reprotect``). It refuses unless vCenter
  proves the primary does not run (off on a host it reaches, or on a host it reports down)
  or the caller forces it: a host vCenter cannot reach may still run the VM.
* **Fence** powers off through vCenter, which needs the VM's host reachable; on an
  unreachable host it cannot prove anything and says so (Conflict).
* **Restart** (from the VM's own files) is vSphere HA's job when HA is on; when HA did not,
  UnregisterVM + RegisterVM_Task of the ``.vmx`` on a surviving host + PowerOnVM_Task, only
  for a host reported down. The VM gets a new moref (``result["vm_id"]``). See :meth:`restart`.
* **Test failover** clones the secondary, powered on with every NIC disconnected, named
  ``<vm>--ftbridge-test-<n>`` (left out of the inventory); ``cleanup_test`` destroys only VMs
  so named.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from ftbridge.drivers import (
    BackendInfo,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    HealthReport,
    InventoryPart,
    MechanismRules,
    Operation,
    OperationStatus,
    OpState,
    SecondarySpec,
    StoragePlacement,
)
from ftbridge.errors import BackendUnavailable, Conflict, NotFound
from ftbridge.model import VM, HostState, PowerState, Secondary
from ftbridge_vsphere import wire
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.inventory import MECHANISM, TEST_MARK

if TYPE_CHECKING:
    from ftbridge_vsphere.client import Session

FT_RULES = MechanismRules(
    name=MECHANISM,
    description="vSphere Fault Tolerance: a lockstep secondary VM on another host, "
    "its own config and disks on the datastores you choose, a tie-breaker file on a shared datastore",
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
    # vSphere Availability, "Protecting VMs with vSphere Fault Tolerance": the secondary runs in
    # lockstep and "is immediately activated"; "users experience no interruption in service and
    # no loss of data"
    rpo=0.0,
    rto=0.0,
    # the same guide: the secondary VM runs on its own host and "requires the same amount of
    # memory" as the primary, reserved there: taking over needs no more room on that host
    hot_standby=True,
)

#: vCenter task descriptionIds -> operation kinds, for pending_operations()
_TASK_KINDS = {
    "VirtualMachine.relocate": "move_vm",
    "VirtualMachine.createSecondaryEx": "protect",
    "VirtualMachine.turnOffFaultTolerance": "unprotect",
    "VirtualMachine.makePrimary": "promote",
    "VirtualMachine.clone": "test_failover",
    "VirtualMachine.destroy": "cleanup_test",
    "VirtualMachine.powerOff": "fence",
    "VirtualMachine.powerOn": "restart",
}
_test_seq = itertools.count(1)
#: how long protect waits for FT to turn off when it replaces a secondary
REPLACE_TIMEOUT = 600.0
log = logging.getLogger(__name__)


class VsphereDriver(Driver, StoragePlacement, Failover):
    """One vCenter. Implements every capability of the contract, for the ``vsphere-ft`` mechanism."""

    name = "vsphere"
    api_versions = (2, 2)  # the driver contract it is written for (ftbridge.drivers.API_VERSION)
    Config = VsphereConfig
    capabilities = frozenset(Capability)
    mechanisms = {MECHANISM: FT_RULES}
    default_concurrency = 4

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        super().__init__(config, endpoint=endpoint)
        assert isinstance(config, VsphereConfig)
        self.cfg = config
        self._session: Session | None = None

    # lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        from ftbridge_vsphere import client

        self.close()
        self._session = client.connect(self.cfg, self.endpoint)

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise BackendUnavailable("the vsphere driver is not open", endpoint=self.endpoint)
        return self._session

    def _do(self, doing: str) -> Any:
        from ftbridge_vsphere.client import translated

        return translated(self.endpoint, doing)

    def probe(self) -> BackendInfo:
        with self._do("reading the server's identity"):
            about = self.session.about()
            api_type = str(self.session.content.about.apiType)
        caps = self.capabilities
        if api_type != "VirtualCenter":  # a bare ESXi host: no FT, no Storage vMotion across hosts
            caps = frozenset({Capability.INVENTORY, Capability.HEALTH, Capability.FENCE})
        return BackendInfo(
            product=about["product"],
            version=about["version"],
            capabilities=caps,
            details={"api": about["api"], "build": about["build"], "api_type": api_type},
        )

    # inventory ----------------------------------------------------------------------------
    def inventory(self) -> InventoryPart:
        from ftbridge_vsphere import inventory

        with self._do("reading the inventory"):
            return inventory.read(self.session, self.endpoint, datacenter=self.cfg.datacenter, cluster=self.cfg.cluster)

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        return self._vm(vm_id)[0].secondaries

    def _vm(self, vm_id: str) -> tuple[VM, InventoryPart]:
        part = self.inventory()
        vm = next((v for v in part.vms if v.id == vm_id), None)
        if vm is None:
            raise NotFound(f"no VM {vm_id!r}", endpoint=self.endpoint)
        return vm, part

    def _raw_vm(self, vm_id: str) -> dict[str, wire.Element]:
        """A VM's name, FT role and disks, read directly by :mod:`wire` (one round trip, any
        device type; NotFound if unknown)."""
        with self._do(f"reading VM {vm_id}"):
            found = self.session.fetch("VirtualMachine", [vm_id], ["name", "config.ftInfo", "config.hardware.device"])
        o = next((x for x in found if x.moid == vm_id and x.props), None)
        if o is None:
            raise NotFound(f"no VM {vm_id!r}", endpoint=self.endpoint)
        return o.props

    def _refuse_ft_move(self, vm_id: str, props: dict[str, wire.Element]) -> None:
        ft = props.get("config.ftInfo")
        name = wire.text(props.get("name"), vm_id)
        if ft is None:
            return
        if wire.integer(wire.child(ft, "role"), 1) != 1:
            raise Conflict(
                f"VM {name} is an FT secondary: move its primary's FT placement instead", endpoint=self.endpoint
            )
        if wire.child(ft, "secondaries") is not None:
            raise Conflict(
                f"VM {name} is fault tolerant: vSphere cannot move its storage while FT is on",
                hint="unprotect (turn FT off), move, then protect again; the planner sequences this "
                "(vsphere-ft blocks primary moves), or use the driver's ex_move_ft_vm",
                endpoint=self.endpoint,
            )

    def _disk_keys(self, props: dict[str, wire.Element]) -> list[str]:
        return [
            wire.ctext(d, "key")
            for d in wire.items(props.get("config.hardware.device"))
            if wire.xsi_type(d) == "VirtualDisk"
        ]

    # placement ----------------------------------------------------------------------------
    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        props = self._raw_vm(vm_id)
        self._refuse_ft_move(vm_id, props)
        if disk_id not in self._disk_keys(props):
            raise NotFound(f"VM {wire.text(props.get('name'), vm_id)} has no disk {disk_id!r}", endpoint=self.endpoint)
        with self._do(f"moving disk {disk_id} of {vm_id}"):
            task = self.session.relocate(vm_id, disks={int(disk_id): datastore_id})
        return self._op(task, "move_disk", vm_id, disk=disk_id, datastore=datastore_id)

    def move_vm(self, vm_id: str, datastore_id: str, *, host_id: str | None = None) -> Operation:
        props = self._raw_vm(vm_id)
        self._refuse_ft_move(vm_id, props)
        disks = {int(k): datastore_id for k in self._disk_keys(props)}
        with self._do(f"moving VM {vm_id}"):
            task = self.session.relocate(vm_id, datastore=datastore_id, disks=disks, host=host_id)
        return self._op(task, "move_vm", vm_id, datastore=datastore_id, host=host_id or "")

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("protect", vm_id, spec)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("reprotect", vm_id, spec)

    def _protect(self, kind: str, vm_id: str, spec: SecondarySpec) -> Operation:
        vm, part = self._vm(vm_id)
        old = next((s for s in vm.secondaries if s.mechanism == MECHANISM), None)
        check_ft_spec(vm, spec, part, self.endpoint, replacing=old)
        assert spec.host and spec.config_datastore and spec.metadata_datastore
        if old is not None:
            # vSphere FT keeps exactly one secondary, so a replacement is break-before-make: FT off
            # (waited for here; a crash before the new task starts leaves an unprotected VM that a
            # re-run protects), then the new secondary below. The old secondary's unprotect then
            # finds it gone. See the module docstring.
            log.warning(
                "endpoint %s: %s already has FT secondary %s; vSphere FT keeps one, so it is "
                "turned off before the new one is created",
                self.endpoint,
                vm.name,
                old.id,
            )
            with self._do(f"turning FT off for {vm.name} to replace its secondary"):
                off = self._op(self.session.turn_off_ft(vm_id), "unprotect", vm_id)
            status = self.wait(off, timeout=REPLACE_TIMEOUT)
            if status.state is not OpState.SUCCEEDED:
                raise Conflict(
                    f"cannot replace the FT secondary of {vm.name}: {status.message}", endpoint=self.endpoint
                )
        with self._do(f"creating the FT secondary of {vm.name}"):
            task = self.session.create_secondary(
                vm_id,
                host=spec.host,
                config_datastore=spec.config_datastore,
                disks={int(k): ds for k, ds in spec.disks.items()},
                metadata_datastore=spec.metadata_datastore,
            )
        return self._op(task, kind, vm_id, host=spec.host)

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        props = self._raw_vm(vm_id)
        secondaries = [wire.moid(x) for x in wire.children(props.get("config.ftInfo"), "secondaries")]
        if secondary_id not in secondaries:
            raise NotFound(
                f"VM {wire.text(props.get('name'), vm_id)} has no FT secondary {secondary_id!r}", endpoint=self.endpoint
            )
        with self._do(f"turning FT off for {vm_id}"):
            task = self.session.turn_off_ft(vm_id)
        return self._op(task, "unprotect", vm_id, secondary=secondary_id)

    # failover -------------------------------------------------------------------------------
    def health(self) -> HealthReport:
        from ftbridge_vsphere import inventory

        specs = {k: inventory.SPECS[k] for k in ("Datacenter", "HostSystem", "ClusterComputeResource", "Datastore")}
        with self._do("reading host and datastore health"):
            objects = self.session.collect(specs)
            inventory.check_refusal(objects, self.endpoint)
            part = inventory.build(objects, self.endpoint)
        notes = tuple(f"host {h.name} is {h.state.value}" for h in part.hosts if h.state is not HostState.UP)
        notes += tuple(f"datastore {d.name} is not accessible" for d in part.datastores if not d.accessible)
        return HealthReport(
            hosts={h.id: h.state for h in part.hosts},
            datastores={d.id: d.accessible for d in part.datastores},
            quorum=None,
            notes=notes,
        )

    def _secondary(self, vm_id: str, secondary_id: str) -> tuple[VM, Secondary, InventoryPart]:
        vm, part = self._vm(vm_id)
        sec = next((s for s in vm.secondaries if s.id == secondary_id), None)
        if sec is None:
            raise NotFound(f"VM {vm.name} has no FT secondary {secondary_id!r}", endpoint=self.endpoint)
        hosts = {h.id: h for h in part.hosts}
        if sec.host is None or hosts[sec.host].state is not HostState.UP:
            where = hosts[sec.host].name if sec.host else "no host"
            raise Conflict(f"the FT secondary of {vm.name} runs on {where}, which is not up", endpoint=self.endpoint)
        return vm, sec, part

    @staticmethod
    def _proven_off(vm: VM, part: InventoryPart) -> tuple[bool, str]:
        """Does vCenter prove the VM is not running? Powered off on a host it reaches, or on a
        host it reports down; a host it cannot reach proves nothing (the VM may still run)."""
        host = next((h for h in part.hosts if h.id == vm.host), None)
        if host is None:
            return False, "it has no host vCenter knows"
        if host.state is HostState.DOWN:
            return True, f"its host {host.name} is down"
        if host.state in (HostState.UP, HostState.MAINTENANCE):
            if vm.power is PowerState.OFF:
                return True, "it is powered off"
            return False, f"it runs on {host.name}, which vCenter reaches"
        return False, f"its host {host.name} is {host.state.value}: vCenter cannot tell whether it still runs"

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        vm, sec, part = self._secondary(vm_id, secondary_id)
        if host_id is not None and host_id != sec.host:
            raise Conflict(
                f"vSphere FT promotes {vm.name} on its secondary's host ({sec.host}), not {host_id}",
                endpoint=self.endpoint,
            )
        off, why = self._proven_off(vm, part)
        if not off and not force:
            raise Conflict(
                f"VM {vm.name} may still run ({why}): refusing to promote its secondary (fence it first, or force)",
                endpoint=self.endpoint,
            )
        with self._do(f"failing {vm.name} over to its FT secondary"):
            task = self.session.make_primary(vm_id, secondary_id)
        return self._op(task, "promote", vm_id, secondary=secondary_id)

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        vm, sec, _part = self._secondary(vm_id, secondary_id)
        name = f"{vm.name}{TEST_MARK}{int(time.time())}-{next(_test_seq)}"
        datastore = sec.config_datastore or sec.disks[0].datastore
        with self._do(f"starting a test failover of {vm.name}"):
            task = self.session.clone_isolated(sec.id, name, datastore=datastore, host=host_id or sec.host)
        return self._op(task, "test_failover", vm_id, test_name=name, host=host_id or sec.host or "")

    def cleanup_test(self, vm_id: str, test_id: str, *, timeout: float = 300.0) -> Operation:
        with self._do(f"reading test VM {test_id}"):
            props = self.session.retrieve("VirtualMachine", [test_id], ["name", "runtime.powerState"])
        if test_id not in props:
            raise NotFound(f"no test VM {test_id!r}", endpoint=self.endpoint)
        name = str(props[test_id].get("name", ""))
        if TEST_MARK not in name:
            raise Conflict(
                f"VM {name or test_id} is not a test-failover VM: refusing to destroy it", endpoint=self.endpoint
            )
        if str(props[test_id].get("runtime.powerState")) != "poweredOff":
            with self._do(f"powering off test VM {name}"):
                off = self._op(self.session.power_off(test_id), "fence", test_id)
            status = self.wait(off, timeout=timeout)
            if status.state is OpState.FAILED:
                raise Conflict(f"cannot power off test VM {name}: {status.message}", endpoint=self.endpoint)
        with self._do(f"destroying test VM {name}"):
            task = self.session.destroy(test_id)
        return self._op(task, "cleanup_test", vm_id, test_id=test_id)

    def fence(self, vm_id: str) -> Operation:
        """PowerOffVM_Task when vCenter reaches the VM's host; done at once when the VM is
        proven off already. A VM on a host vCenter cannot reach cannot be powered off through
        vCenter (HostNotConnected), so it cannot be proven off: Conflict (ftbridge has no
        power management of its own)."""
        vm, part = self._vm(vm_id)
        off, why = self._proven_off(vm, part)
        if off:
            return self._done("fence", vm_id, message=why)
        host = next((h for h in part.hosts if h.id == vm.host), None)
        if host is None or host.state not in (HostState.UP, HostState.MAINTENANCE):
            raise Conflict(
                f"cannot fence {vm.name}: {why}; vCenter cannot power off a VM on a host it cannot "
                "reach, so it cannot be proven off",
                endpoint=self.endpoint,
                hint="power the host off out of band (its iLO/iDRAC), then retry; or force the promotion",
            )
        with self._do(f"powering off {vm.name}"):
            task = self.session.power_off(vm_id)
        return self._op(task, "fence", vm_id)

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        """Start the VM from its own files on a surviving host.

        vSphere restarts a VM whose host failed through vSphere HA, which keeps its moref; the
        API has no call that asks HA to do it now, and a VM stays registered on its failed host
        (power operations there fail with HostNotConnected). So, when HA did not: UnregisterVM
        (files kept), RegisterVM_Task of its ``.vmx`` on the target host (in that host's root
        resource pool), PowerOnVM_Task: the VM gets a new moref (the result's ``vm_id``) and keeps
        its UUIDs, which its ``.vmx`` holds. Only when its host is proven down: on a host vCenter
        merely cannot reach the files stay locked by the running VM (and vCenter refuses to
        unregister a VM it records as powered on: InvalidPowerState). A VM that is off on a host
        that is up is powered on there (``host_id`` only within its compute resource, as
        PowerOnVM_Task allows). Idempotent: a VM that runs succeeds at once.
        """
        vm, part = self._vm(vm_id)
        hosts = {h.id: h for h in part.hosts}
        cur = hosts.get(vm.host or "")
        if vm.power is PowerState.ON and cur is not None and cur.state is HostState.UP:
            return self._done("restart", vm_id, host=cur.id, message="it runs already")
        if not vm.config_path:
            raise Conflict(f"cannot restart {vm.name}: vCenter did not say where its .vmx is", endpoint=self.endpoint)
        dss = {d.id: d for d in part.datastores}
        needed = sorted(vm.needed_datastores)
        gone = [dss[i].name if i in dss else i for i in needed if i not in dss or not dss[i].accessible]
        if gone:
            raise Conflict(
                f"cannot restart {vm.name}: its storage {', '.join(gone)} is not accessible", endpoint=self.endpoint
            )
        if cur is not None and cur.state in (HostState.UP, HostState.MAINTENANCE):
            target = (
                host_id
                if host_id
                and hosts.get(host_id)
                and hosts[host_id].cluster == cur.cluster
                and hosts[host_id].cluster is not None
                else None
            )
            with self._do(f"powering on {vm.name}"):
                task = self.session.power_on(vm_id, target)
            return self._op(task, "restart", vm_id, host=target or cur.id)
        if cur is None or cur.state is not HostState.DOWN:
            _off, why = self._proven_off(vm, part)
            raise Conflict(
                f"cannot restart {vm.name} elsewhere: {why}",
                endpoint=self.endpoint,
                hint="fence its host out of band, or let vSphere HA restart it",
            )
        candidates = [
            h
            for h in ([hosts[host_id]] if host_id in hosts else sorted(hosts.values(), key=lambda h: h.id))
            if h.state is HostState.UP and all(h.id in dss[i].hosts for i in needed)
        ]
        if not candidates:
            names = ", ".join(dss[i].name for i in needed)
            asked = f" ({hosts[host_id].name} was asked for)" if host_id in hosts else ""
            raise Conflict(
                f"cannot restart {vm.name}: no host that is up mounts {names}{asked}", endpoint=self.endpoint
            )
        target_host = candidates[0]
        with self._do(f"re-registering {vm.name} on {target_host.name}"):
            folder = self.session.retrieve("VirtualMachine", [vm_id], ["parent"])[vm_id]["parent"]._moId
            self.session.unregister(vm_id)
            reg = self._op(
                self.session.register(folder, vm.config_path, vm.name, host=target_host.id), "register", vm_id
            )
        status = self.wait(reg, timeout=REPLACE_TIMEOUT)
        new_id = status.result.get("moref", "")
        if status.state is not OpState.SUCCEEDED or not new_id:
            raise Conflict(
                f"{vm.name} was unregistered but registering {vm.config_path} on {target_host.name} "
                f"failed: {status.message}",
                hint="register the .vmx by hand",
                endpoint=self.endpoint,
            )
        with self._do(f"powering on {vm.name} on {target_host.name}"):
            task = self.session.power_on(new_id)
        return self._op(task, "restart", vm_id, host=target_host.id, vm=new_id)

    # operations -----------------------------------------------------------------------------
    def _op(self, task_id: str, kind: str, vm_id: str, **data: str | None) -> Operation:
        return Operation(
            id=task_id,
            endpoint=self.endpoint,
            kind=kind,
            vm=vm_id,
            data={k: v for k, v in data.items() if v is not None},
        )

    def _done(self, kind: str, vm_id: str, *, message: str, **data: str) -> Operation:
        """An operation that needed no task: it has succeeded (``poll`` says so)."""
        return Operation(
            id=f"done:{kind}:{vm_id}", endpoint=self.endpoint, kind=kind, vm=vm_id, data={"done": message, **data}
        )

    def poll(self, op: Operation) -> OperationStatus:
        if "done" in op.data:
            done = {"host": op.data["host"]} if "host" in op.data else {}
            return OperationStatus(OpState.SUCCEEDED, progress=1.0, message=op.data["done"], result=done)
        with self._do(f"reading task {op.id}"):
            info = self.session.task_info(op.id)
        if info.state in ("queued", "running"):
            return OperationStatus(OpState.RUNNING, progress=info.progress or 0.0)
        if info.state == "error":
            if op.kind == "fence" and info.fault == "InvalidPowerState":
                return OperationStatus(OpState.SUCCEEDED, progress=1.0, message="already powered off")
            if op.kind == "restart" and info.fault == "InvalidPowerState":
                return OperationStatus(
                    OpState.SUCCEEDED,
                    progress=1.0,
                    message="already powered on",
                    result={"host": op.data.get("host", ""), "vm_id": op.data.get("vm", op.vm)},
                )
            return OperationStatus(
                OpState.FAILED, progress=1.0, message=f"{op.kind} failed: {info.message}", retryable=info.retryable
            )
        result: dict[str, str] = {}
        if op.kind in ("protect", "reprotect") and "vm" in info.result:
            result["secondary_id"] = info.result["vm"]
        if op.kind == "test_failover" and "moref" in info.result:
            result = {"test_id": info.result["moref"], "host": op.data.get("host", "")}
        if op.kind == "register" and "moref" in info.result:
            result = {"moref": info.result["moref"]}
        if op.kind == "restart":  # the VM's id changes when it was registered anew
            result = {"host": op.data.get("host", ""), "vm_id": op.data.get("vm", op.vm)}
        return OperationStatus(OpState.SUCCEEDED, progress=1.0, result=result)

    def pending_operations(self, vm_id: str) -> list[Operation]:
        with self._do(f"reading the tasks of {vm_id}"):
            tasks = self.session.recent_tasks(vm_id)
        return [
            Operation(id=t, endpoint=self.endpoint, kind=_TASK_KINDS.get(d, d or "unknown"), vm=vm_id) for t, d in tasks
        ]

    # extras -----------------------------------------------------------------------------------
    def ex_move_ft_vm(
        self,
        vm_id: str,
        datastore_id: str,
        *,
        host_id: str | None = None,
        spec: SecondarySpec | None = None,
        timeout: float = 3600.0,
    ) -> str:
        """FT off, move, FT on again (at ``spec``, default: where the secondary was). Returns
        the new secondary's id. One call for scripts; the planner journals the steps instead."""
        vm, _part = self._vm(vm_id)
        old = next((s for s in vm.secondaries if s.mechanism == MECHANISM), None)
        if old is None:
            raise Conflict(f"VM {vm.name} is not fault tolerant: use move_vm", endpoint=self.endpoint)
        spec = spec or SecondarySpec(
            mechanism=MECHANISM,
            disks={x.disk: x.datastore for x in old.disks},
            config_datastore=old.config_datastore,
            host=old.host,
            metadata_datastore=old.metadata_datastore,
        )
        status = self.wait(self.unprotect(vm_id, old.id), timeout=timeout)
        if status.state is not OpState.SUCCEEDED:
            raise Conflict(status.message, endpoint=self.endpoint)
        status = self.wait(self.move_vm(vm_id, datastore_id, host_id=host_id), timeout=timeout)
        if status.state is not OpState.SUCCEEDED:
            raise Conflict(
                f"{vm.name} is unprotected (FT off) and did not move: {status.message}",
                hint="protect it again where it is",
                endpoint=self.endpoint,
            )
        status = self.wait(self.protect(vm_id, spec), timeout=timeout)
        if status.state is not OpState.SUCCEEDED:
            raise Conflict(
                f"{vm.name} moved but FT could not be turned on again: {status.message}", endpoint=self.endpoint
            )
        return status.result.get("secondary_id", "")

    def ex_tests(self) -> list[tuple[str, str]]:
        """(id, name) of test-failover VMs still present (none after cleanup)."""
        with self._do("listing test-failover VMs"):
            objects = self.session.collect({"VirtualMachine": ("name",)})
        from ftbridge_vsphere import wire

        return sorted(
            (o.moid, wire.text(o.props.get("name"))) for o in objects if TEST_MARK in wire.text(o.props.get("name"))
        )

    @property
    def ex_round_trips(self) -> int:
        """SOAP round trips made by this connection so far (for the benchmark)."""
        return self.session.round_trips


def check_ft_spec(
    vm: VM, spec: SecondarySpec, part: InventoryPart, endpoint: str, *, replacing: Secondary | None = None
) -> None:
    """Every FT rule and limit, checked before vCenter is asked, with a Conflict naming it.
    ``replacing``: the FT secondary the new one replaces (it no longer counts)."""
    r = FT_RULES

    def no(msg: str) -> Conflict:
        return Conflict(f"cannot protect {vm.name} with {MECHANISM}: {msg}", endpoint=endpoint)

    if spec.mechanism != MECHANISM:
        raise no(f"mechanism {spec.mechanism!r} is not offered here (offered: {MECHANISM})")
    if vm.managed_by:
        raise no(f"it is managed by {vm.managed_by}: leave it to that extension")
    if vm.mechanisms is not None and MECHANISM not in vm.mechanisms:
        why = "; ".join(w for w in vm.warnings if "FT" in w) or "its disks"
        raise no(f"vSphere FT cannot protect it ({why})")
    if any(s.mechanism == MECHANISM and s is not replacing for s in vm.secondaries):
        raise no("it already has an FT secondary (vSphere FT keeps exactly one)")
    hosts = {h.id: h for h in part.hosts}
    dss = {d.id: d for d in part.datastores}
    disk_ids = {d.id for d in vm.disks}
    if set(spec.disks) != disk_ids:
        missing, extra = sorted(disk_ids - set(spec.disks)), sorted(set(spec.disks) - disk_ids)
        raise no(f"the spec must place every disk exactly: missing {missing}, unknown {extra}")
    if vm.vcpus > (r.max_vcpus_per_vm or vm.vcpus):
        raise no(f"it has {vm.vcpus} vCPUs; FT allows at most {r.max_vcpus_per_vm}")
    if len(vm.disks) > (r.max_disks or len(vm.disks)):
        raise no(f"it has {len(vm.disks)} disks; FT allows at most {r.max_disks}")
    if not spec.host:
        raise no("the spec names no host for the secondary")
    if spec.host not in hosts:
        raise NotFound(f"no host {spec.host!r}", endpoint=endpoint)
    host = hosts[spec.host]
    if spec.host == vm.host:
        raise no(f"the secondary must run on another host than the primary ({host.name})")
    if host.state is not HostState.UP:
        raise no(f"host {host.name} is {host.state.value}")
    if not spec.config_datastore:
        raise no("the spec names no datastore for the secondary's configuration")
    if not spec.metadata_datastore:
        raise no("the spec names no metadata (tie-breaker) datastore")
    for role, ds_id in [("configuration", spec.config_datastore), *((f"disk {k}", v) for k, v in spec.disks.items())]:
        if ds_id not in dss:
            raise NotFound(f"no datastore {ds_id!r}", endpoint=endpoint)
        ds = dss[ds_id]
        if not ds.accessible:
            raise no(f"datastore {ds.name} (secondary {role}) is not accessible")
        if spec.host not in ds.hosts:
            raise no(f"host {host.name} does not mount datastore {ds.name} (secondary {role})")
    if spec.metadata_datastore not in dss:
        raise NotFound(f"no datastore {spec.metadata_datastore!r}", endpoint=endpoint)
    meta = dss[spec.metadata_datastore]
    if not meta.shared:
        raise no(f"the metadata datastore {meta.name} must be shared storage")
    if not meta.accessible:
        raise no(f"the metadata datastore {meta.name} is not accessible")
    for hid in (vm.host, spec.host):
        if hid and hid not in meta.hosts:
            raise no(f"the metadata datastore {meta.name} is not mounted by host {hosts[hid].name}")

    # Per-host limits: FT primaries and secondaries alike count on the host they run on.
    def load(hid: str) -> tuple[int, int]:
        n = cpus = 0
        for other in part.vms:
            if other.ha and other.host == hid:  # ha: FT configured (see inventory)
                n, cpus = n + 1, cpus + other.vcpus
            for s in other.secondaries:
                if s.mechanism == MECHANISM and s.host == hid and s is not replacing:
                    n, cpus = n + 1, cpus + other.vcpus
        return n, cpus

    targets = [spec.host] + ([vm.host] if vm.host and not vm.ha else [])
    for hid in targets:
        n, cpus = load(hid)
        name = hosts[hid].name
        if r.max_vms_per_host is not None and n + 1 > r.max_vms_per_host:
            raise no(f"host {name} already runs {n} FT VMs (limit {r.max_vms_per_host}, das.maxftvmsperhost)")
        if r.max_vcpus_per_host is not None and cpus + vm.vcpus > r.max_vcpus_per_host:
            raise no(
                f"host {name} would run {cpus + vm.vcpus} FT vCPUs (limit {r.max_vcpus_per_host}, "
                "das.maxftvcpusperhost)"
            )
