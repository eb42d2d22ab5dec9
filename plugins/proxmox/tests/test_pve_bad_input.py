"""Bad input gets a clear ftbridge error, never a traceback: wrong credentials, an untrusted
certificate, a closed port, a slow or failing server, configs the parser does not know."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from ftbridge_proxmox.lab.tls import make_tls
from pve_helpers import LabFactory, make_driver
from pydantic import ValidationError

from ftbridge.errors import (
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    FtbridgeError,
    OperationTimeout,
)


def _open_fails(drv: ProxmoxDriver, kind: type[FtbridgeError]) -> FtbridgeError:
    try:
        with pytest.raises(kind) as info:
            drv.open()
    finally:
        drv.close()
    return info.value


def test_wrong_token(lab: ProxmoxLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAD_TOKEN", "11111111-2222-3333-4444-555555555555")
    err = _open_fails(make_driver(lab, token={"env": "BAD_TOKEN"}), AuthenticationError)
    assert "invalid token value" in str(err) and err.hint and "token" in err.hint
    assert err.exit_code == 6


def test_wrong_password(lab: ProxmoxLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAD_PW", "not-the-password")
    cfg = {k: v for k, v in lab.endpoint_config().items() if k not in ("token", "token_name")}
    err = _open_fails(make_driver_cfg(cfg, password={"env": "BAD_PW"}), AuthenticationError)
    assert "login rejected for user root@pam" in str(err)


def test_right_password_logs_in_with_a_ticket(lab: ProxmoxLab) -> None:
    cfg = {k: v for k, v in lab.endpoint_config().items() if k not in ("token", "token_name")}
    drv = make_driver_cfg(cfg, password={"env": lab.PASSWORD_ENV})
    drv.open()
    try:
        assert drv.inventory().vms
        op = drv.move_disk("102", "scsi0", "nfs-b")  # a write: the ticket's CSRF token is sent
        assert drv.wait(op, timeout=30).state.value == "succeeded"
    finally:
        drv.close()


def make_driver_cfg(cfg: Mapping[str, object], **overrides: object) -> ProxmoxDriver:
    return ProxmoxDriver(ProxmoxConfig.model_validate({**cfg, **overrides}), endpoint="pve")


def test_wrong_ca_is_a_clear_tls_error(lab: ProxmoxLab, tmp_path: Path) -> None:
    other = make_tls(tmp_path / "other")
    err = _open_fails(make_driver(lab, ca_file=str(other.ca_file)), AuthenticationError)
    assert "TLS certificate of https://127.0.0.1:" in str(err) and "not trusted" in str(err)
    assert err.hint and "ca_file" in err.hint


def test_no_ca_file_means_the_system_store_which_does_not_know_the_lab(lab: ProxmoxLab) -> None:
    cfg = {k: v for k, v in lab.endpoint_config().items() if k != "ca_file"}
    err = _open_fails(make_driver_cfg(cfg), AuthenticationError)
    assert "not trusted" in str(err)


def test_missing_ca_file_is_a_config_error(lab: ProxmoxLab, tmp_path: Path) -> None:
    err = _open_fails(make_driver(lab, ca_file=str(tmp_path / "nope.pem")), ConfigError)
    assert "ca_file" in str(err) and "does not exist" in str(err)


def test_unreachable_host_is_backend_unavailable(lab: ProxmoxLab) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _open_fails(make_driver(lab, port=port), BackendUnavailable)
    assert "connection refused" in str(err) and err.retryable and err.exit_code == 5


def test_a_slow_server_is_a_timeout(lab: ProxmoxLab) -> None:
    lab.inject(slow=1.0)
    err = _open_fails(make_driver(lab, timeout=0.2), OperationTimeout)
    assert "did not answer" in str(err) and err.retryable


def test_transient_5xx_are_retried_on_reads(lab: ProxmoxLab) -> None:
    drv = make_driver(lab, read_retries=5)
    drv.open()
    try:
        lab.inject(error_rate=0.2, error_status=503)
        part = drv.inventory()
        assert {v.id for v in part.vms} == {"100", "101", "102", "103", "104", "105"}
        assert not any("unreadable" in w for v in part.vms for w in v.warnings)
    finally:
        drv.close()
    impatient = make_driver(lab, read_retries=0)
    impatient.open()
    try:
        lab.inject(error_rate=1.0)
        with pytest.raises(BackendUnavailable) as info:
            impatient.move_disk("102", "scsi0", "nfs-b")
        assert info.value.retryable and "injected fault" in str(info.value)
    finally:
        impatient.close()


def test_unknown_and_unreadable_config_lines_are_reported(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    lab.set_config_line(102, "nvme0", "ceph-a:vm-102-disk-7,size=64G")
    lab.set_config_line(102, "scsi5", "ceph-a:vm-102-disk-8,size=a-lot")
    vm = next(v for v in pve.inventory().vms if v.id == "102")
    assert [d.id for d in vm.disks] == ["scsi0"]
    assert any("nvme0" in w and "vm-102-disk-7" in w for w in vm.warnings), vm.warnings
    assert any("scsi5" in w and "a-lot" in w for w in vm.warnings), vm.warnings


def test_a_dead_node_makes_warnings_not_a_failure(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    lab.partition_host("pve3")
    part = pve.inventory()
    # no HA service runs on pve3, so nothing will fence it: offline proves nothing
    assert {h.id: h.state.value for h in part.hosts}["pve3"] == "unreachable"
    vm = next(v for v in part.vms if v.id == "104")
    assert vm.power.value == "unknown" and any("node pve3 is offline" in w for w in vm.warnings)
    assert {d.id: d.accessible for d in part.datastores}["local-zfs@pve3"] is False
    report = pve.health()
    assert report.hosts["pve3"].value == "unreachable" and report.quorum is True
    lab.restore()
    lab.fail_host("pve3")  # failed as PVE proves it: fenced by its HA stack
    assert pve.health().hosts["pve3"].value == "down"
    assert next(v for v in pve.inventory().vms if v.id == "104").power.value == "off"


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {"host": "h", "user": "root@pam", "token_name": "tk", "token": "literal-secret"},
            "never written in the config",
        ),
        ({"host": "h", "user": "root", "password": {"env": "X"}}, "user@realm"),
        ({"host": "h", "url": "https://h", "user": "a@pve", "password": {"env": "X"}}, "exactly one of host or url"),
        (
            {"host": "h", "user": "a@pve", "password": {"env": "X"}, "token_name": "tk", "token": {"env": "Y"}},
            "exactly one credential",
        ),
        ({"host": "h", "user": "a@pve", "token_name": "a@pve!t", "token": {"env": "Y"}}, "token id only"),
        ({"url": "http://h:8006", "user": "a@pve", "password": {"env": "X"}}, "https"),
        ({"host": "h", "user": "a@pve", "password": {"env": "X"}, "verify": False}, "Extra inputs"),
    ],
)
def test_config_errors_are_specific(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProxmoxConfig.model_validate({"driver": "proxmox", **table})


def test_url_form_reaches_the_lab(lab: ProxmoxLab, lab_factory: LabFactory) -> None:
    cfg = {k: v for k, v in lab.endpoint_config().items() if k not in ("host", "port")}
    drv = make_driver_cfg(cfg, url=f"https://127.0.0.1:{lab.port}")
    drv.open()
    try:
        assert drv.probe().version == "9.1.3"
    finally:
        drv.close()
