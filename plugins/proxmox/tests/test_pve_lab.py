"""The lab behaves like PVE on the wire: auth, CSRF, 0/1 booleans, errors in the status line,
595 for a dead node, and PVE's own rules. Checked with plain requests and with proxmoxer."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from ftbridge_proxmox.lab import ProxmoxLab

PROBE = "ftbridge-lab-probe"


class Raw:
    """A bare API client: ticket login, or the API token."""

    def __init__(self, lab: ProxmoxLab, *, token: bool = True) -> None:
        self.base = lab.url
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE would override the session's CA
        self.s.headers["User-Agent"] = PROBE  # the fidelity test skips these deliberately bad requests
        self.s.verify = str(lab.ca_file)
        if token:
            self.s.headers["Authorization"] = f"PVEAPIToken={lab.user}!{lab.token_id}={lab.token}"

    def login(self, password: str, csrf: bool = True) -> None:
        r = self.s.post(f"{self.base}/access/ticket", data={"username": "root@pam", "password": password})
        r.raise_for_status()
        data = r.json()["data"]
        self.s.cookies.set("PVEAuthCookie", data["ticket"])
        if csrf:
            self.s.headers["CSRFPreventionToken"] = data["CSRFPreventionToken"]

    def call(self, method: str, path: str, **params: Any) -> requests.Response:
        if method in ("GET", "DELETE"):
            return self.s.request(method, self.base + path, params=params)
        return self.s.request(method, self.base + path, data=params)


def test_envelope_and_token_auth(lab: ProxmoxLab) -> None:
    r = Raw(lab).call("GET", "/version")
    assert r.status_code == 200 and r.json() == {
        "data": {"version": "9.1.3", "release": "9.1", "repoid": r.json()["data"]["repoid"]}
    }


def test_no_credentials_and_bad_token_are_401_in_the_status_line(lab: ProxmoxLab) -> None:
    raw = Raw(lab, token=False)
    r = raw.call("GET", "/nodes")
    assert (r.status_code, r.reason) == (401, "No ticket")
    raw.s.headers["Authorization"] = f"PVEAPIToken={lab.user}!{lab.token_id}=wrong"
    assert raw.call("GET", "/nodes").status_code == 401


def test_ticket_auth_needs_csrf_on_writes(lab: ProxmoxLab) -> None:
    assert lab.password is not None
    raw = Raw(lab, token=False)
    raw.login(lab.password, csrf=False)
    assert raw.call("GET", "/cluster/status").status_code == 200
    r = raw.call("POST", "/nodes/pve2/qemu/102/status/stop")
    assert (r.status_code, r.reason) == (401, "Permission denied - invalid csrf token")
    raw.login(lab.password)
    assert raw.call("POST", "/nodes/pve2/qemu/102/status/stop").status_code == 200
    bad = Raw(lab, token=False)
    r = bad.s.post(f"{lab.url}/access/ticket", data={"username": "root@pam", "password": "nope"})
    assert (r.status_code, r.reason) == (401, "authentication failure")


def test_parameters_are_checked_as_the_schema_states(lab: ProxmoxLab) -> None:
    raw = Raw(lab)
    r = raw.call("POST", "/nodes/pve2/qemu/102/move_disk", disk="scsi0", storage="nfs-b", delete="True")
    assert r.status_code == 400 and r.reason == "Parameter verification failed."
    assert r.json()["errors"] == {"delete": "type check ('boolean') failed - got 'True'"}
    r = raw.call("POST", "/nodes/pve2/qemu/102/move_disk", storage="nfs-b", colour="blue")
    assert set(r.json()["errors"]) == {"disk", "colour"}
    errors = raw.call("GET", "/nodes/pve2/qemu/99/config").json()["errors"]
    assert errors["vmid"].startswith("value must have a minimum")
    assert raw.call("GET", "/nodes/pve_2/storage").status_code == 400
    assert raw.call("GET", "/cluster/resources", type="vms").status_code == 400
    assert raw.call("POST", "/cluster/replication", id="7-1", target="pve3", type="local").status_code == 400


def test_unknown_calls_are_501(lab: ProxmoxLab) -> None:
    r = Raw(lab).call("GET", "/nodes/pve1/frobnicate")
    assert r.status_code == 501 and "not implemented" in r.reason


def test_a_dead_node_answers_595_and_writes_need_quorum(lab: ProxmoxLab) -> None:
    raw = Raw(lab)
    lab.fail_host("pve1")
    r = raw.call("GET", "/nodes/pve1/qemu/100/config")
    assert (r.status_code, r.reason) == (595, "No route to host")
    assert raw.call("GET", "/nodes/pve2/qemu/102/config").status_code == 200
    lab.fail_host("pve2")
    r = raw.call("POST", "/nodes/pve3/qemu/104/status/start")
    assert (r.status_code, r.reason) == (500, "cluster not ready - no quorum?")
    lab.restore()
    assert raw.call("GET", "/nodes/pve1/qemu/100/config").status_code == 200


def test_pve_rules(lab: ProxmoxLab) -> None:
    raw = Raw(lab)
    r = raw.call("POST", "/cluster/replication", id="102-0", target="pve3", type="local")
    assert (r.status_code, r.reason) == (500, "No replicatable volumes found")  # shared volumes are skipped
    r = raw.call("POST", "/cluster/replication", id="100-1", target="pve2", type="local")
    assert r.reason == "replication job for guest '100' to target 'pve2' already exists"
    r = raw.call("POST", "/nodes/pve2/qemu/105/move_disk", disk="scsi0", storage="small-lvm")
    assert r.status_code == 500 and r.reason.startswith("not enough free space on storage 'small-lvm'")
    r = raw.call("POST", "/nodes/pve1/qemu/101/move_disk", disk="scsi0", storage="small-lvm")
    assert r.reason == "storage 'small-lvm' is not available on node 'pve1'"
    r = raw.call("GET", "/nodes/pve1/qemu/102/config")
    assert r.reason == "Configuration file 'nodes/pve1/qemu-server/102.conf' does not exist"


def test_tasks_take_time_and_can_fail(lab: ProxmoxLab) -> None:
    """A task runs until the test lets it end (its duration), never racing the lab's clock."""
    raw = Raw(lab)
    lab.fail_tasks(type="qmmove", message="zfs error: out of space")
    with lab.cluster.lock:
        lab.cluster.task_seconds = 1e9  # the task runs until released below
    upid = raw.call("POST", "/nodes/pve2/qemu/102/move_disk", disk="scsi0", storage="nfs-b", delete=1).json()["data"]
    assert upid.startswith("UPID:pve2:") and ":qmmove:102:" in upid
    status = raw.call("GET", f"/nodes/pve2/tasks/{upid}/status").json()["data"]
    assert status["status"] == "running" and "exitstatus" not in status
    assert raw.call("POST", "/nodes/pve2/qemu/102/move_disk", disk="scsi0", storage="nfs-b").status_code == 500
    with lab.cluster.lock:
        lab.cluster.tasks[upid].duration = 0.0  # release it: the next request ends it
    status = raw.call("GET", f"/nodes/pve2/tasks/{upid}/status").json()["data"]
    assert (status["status"], status["exitstatus"]) == ("stopped", "zfs error: out of space")
    assert "ceph-a:" in raw.call("GET", "/nodes/pve2/qemu/102/config").json()["data"]["scsi0"]


def test_injected_5xx_and_latency(lab: ProxmoxLab) -> None:
    raw = Raw(lab)
    lab.inject(error_rate=1.0, error_status=503)
    r = raw.call("GET", "/version")
    assert r.status_code == 503 and "injected" in r.reason
    lab.restore()
    lab.inject(slow=2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        raw.s.get(f"{lab.url}/version", timeout=0.3)
    lab.restore()


def test_proxmoxer_sends_python_true_as_True_which_pve_refuses(lab: ProxmoxLab) -> None:
    proxmoxer = pytest.importorskip("proxmoxer")
    api = proxmoxer.ProxmoxAPI(
        "127.0.0.1",
        port=lab.port,
        user=lab.user,
        token_name=lab.token_id,
        token_value=lab.token,
        verify_ssl=str(lab.ca_file),
    )
    api._store["session"].headers["User-Agent"] = PROBE
    with pytest.raises(proxmoxer.ResourceException) as info:
        api.nodes("pve2").qemu(102).move_disk.post(disk="scsi0", storage="nfs-b", delete=True)
    assert info.value.status_code == 400 and info.value.errors == {
        "delete": "type check ('boolean') failed - got 'True'"
    }
