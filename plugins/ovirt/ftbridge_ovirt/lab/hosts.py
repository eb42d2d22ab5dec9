"""Host failures and fencing as the engine sees and allows them.

Sources (ovirt-engine, backend/manager/modules/bll/src/main/java/org/ovirt/engine/core/bll/):

* ``storage/FenceVdsManualyCommand.java`` (``isLegalStatus``): "Confirm 'Host has been rebooted'"
  is accepted for a host that is Down, InstallFailed, Maintenance, NonOperational, NonResponsive,
  Reboot, Installing, Connecting or Kdumping, refused for one that is Up. The engine takes the
  operator's word: the host's VMs are marked Down (``ClearNonResponsiveVdsVms``) and HA ones are
  restarted, whether or not they still run on the host. The lab remembers the VMs that did
  (:attr:`HostCommands.ghosts`), so a test can see a split brain happen.
* ``pm/FenceVdsBaseCommand.java``, ``validator/FenceValidator.java``: a power-management fence
  (stop, restart) needs power management enabled with an agent ("Host fence is disabled").
* The API's HostStatus (ovirt-engine-api-model ``types/HostStatus.java``): ``non_responsive``
  when the engine cannot reach the host; its VMs then show ``unknown``.
"""

from __future__ import annotations

import time

from ftbridge_ovirt.lab.model import Host, Job
from ftbridge_ovirt.lab.state import conflict
from ftbridge_ovirt.lab.vms import VmCommands

MANUAL_FENCE_STATUSES = frozenset(
    {
        "down",
        "install_failed",
        "maintenance",
        "non_operational",
        "non_responsive",
        "reboot",
        "installing",
        "connecting",
        "kdumping",
    }
)


class HostCommands(VmCommands):
    # injected faults ----------------------------------------------------------------------------
    def fail_host(self, host_id: str) -> None:
        """The host died and the engine reports it down (fenced by power management): its VMs are
        down, and the engine restarts the HA ones elsewhere."""
        host = self.hosts[host_id]
        self.host_faults[host_id] = "failed"
        host.status = "down"
        self._host_vms_died(host)
        self.elect_spm(self.clusters[host.cluster].dc)

    def partition_host(self, host_id: str) -> None:
        """The engine loses the host (non_responsive) while its VMs keep running there: their
        status is ``unknown`` and nothing restarts them (a VM lease stays held by the running VM)."""
        host = self.hosts[host_id]
        self.host_faults[host_id] = "partitioned"
        host.status = "non_responsive"
        for vm in self.vms.values():
            if vm.host == host_id and vm.status in ("up", "paused", "powering_up", "wait_for_launch", "migrating"):
                vm.before_fault = vm.before_fault or vm.status
                vm.status = "unknown"
        self.elect_spm(self.clusters[host.cluster].dc)

    def fail_domain(self, sd_id: str) -> None:
        dom = self.domains[sd_id]
        dom.status = "inactive"
        for vm in self.vms.values():
            disk_domains = {self.disks[a.disk].domain for a in vm.attachments if a.disk in self.disks}
            if vm.status == "up" and (sd_id in disk_domains or vm.lease == sd_id):
                vm.before_fault = vm.before_fault or vm.status
                vm.status = "paused"  # I/O errors pause a VM; a lost lease would too

    def restore(self) -> None:
        for host_id, fault in list(self.host_faults.items()):
            self.hosts[host_id].status = "up"
            if fault == "partitioned":  # management is back: the engine sees the VMs still running
                for vm in self.vms.values():
                    if vm.host == host_id and vm.status == "unknown" and vm.before_fault:
                        vm.status, vm.before_fault = vm.before_fault, None
        self.host_faults.clear()
        self.ghosts.clear()
        for dom in self.domains.values():
            if dom.status == "inactive" and dom.imported and dom.dc is not None:
                dom.status = "active"
        for vm in self.vms.values():
            if vm.before_fault and vm.status == "paused" and vm.host:
                vm.status = vm.before_fault
            vm.before_fault = None
        self.pending_restarts.clear()
        self.reset_faults()

    # fencing ------------------------------------------------------------------------------------
    def fence(self, host_id: str, kind: str, corr: str | None) -> Job:
        host: Host = self.get("hosts", host_id, "host")
        if kind == "manual":
            if host.status not in MANUAL_FENCE_STATUSES:
                raise conflict(
                    "Cannot confirm 'Host has been rebooted' Host. Valid Host statuses are \"Non "
                    'operational", "Maintenance" or "Connecting".'
                )
            for vm in self.vms.values():
                if (
                    vm.host == host_id
                    and vm.status in ("unknown", "not_responding")
                    and self.host_faults.get(host_id) == "partitioned"
                ):
                    self.ghosts[vm.id] = host_id  # it still runs there: the operator's word was wrong
            self._host_vms_died(host)
            return self.start_job(
                "fence",
                corr,
                f"Manual fence of host {host.name}",
                instant=True,
                audit=("VDS_MANUAL_FENCE_STATUS", {"VdsName": host.name}),
                host=host.id,
            )
        if kind not in ("stop", "restart"):
            raise conflict(f"Cannot fence Host. Fence type {kind} is not supported by the lab.")
        if not host.pm:
            raise conflict("Cannot fence Host, Host fence is disabled.")
        self.host_faults[host_id] = "failed" if kind == "stop" else self.host_faults.get(host_id, "")
        host.status = "down" if kind == "stop" else "reboot"
        for vm_id in [v for v, h in self.ghosts.items() if h == host_id]:
            del self.ghosts[vm_id]  # powered off: whatever ran there is gone
        self._host_vms_died(host)

        def rebooted() -> None:
            if host.status == "reboot":
                partitioned = self.host_faults.get(host_id) == "partitioned"
                host.status = "non_responsive" if partitioned else "up"
                if not partitioned:
                    self.host_faults.pop(host_id, None)

        return self.start_job(
            "fence",
            corr,
            f"Fencing ({kind}) host {host.name} via power management",
            on_finish=rebooted if kind == "restart" else None,
            audit=("USER_VDS_STOP" if kind == "stop" else "USER_VDS_RESTART", {"VdsName": host.name}),
            host=host.id,
        )

    def _host_vms_died(self, host: Host) -> None:
        for vm in self.vms.values():
            if vm.host == host.id and vm.status != "down":
                vm.status, vm.host, vm.before_fault = "down", None, None
                if self.ha_restart and vm.ha:
                    self.pending_restarts[vm.id] = time.time() + self.ha_delay
                else:
                    self.pending_restarts.pop(vm.id, None)

    def split_brains(self) -> list[str]:
        """VMs that run twice: once as a ghost on a partitioned host, once where the engine started them."""
        return sorted(
            vm_id
            for vm_id, host in self.ghosts.items()
            if vm_id in self.vms and self.vms[vm_id].status != "down" and self.host_faults.get(host) == "partitioned"
        )
