"""Bad input ends in one clear FtbridgeError, never a raw SDK exception or a traceback."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ftbridge_ovirt.config import OvirtConfig
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from pydantic import ValidationError

from ftbridge.config import parse_config
from ftbridge.errors import (
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    DriverLoadError,
    FtbridgeError,
    MissingSecret,
    NotFound,
    OperationTimeout,
)

pytestmark = pytest.mark.lab


def _open_fails(drv: OvirtDriver) -> FtbridgeError:
    try:
        with pytest.raises(FtbridgeError) as info:
            drv.open()
    finally:
        drv.close()
    exc = info.value
    assert type(exc.__cause__).__module__.startswith(("ovirtsdk4", "pycurl")) or exc.__cause__ is None
    return exc


def test_wrong_password(
    lab: OvirtLab, make_driver: Callable[..., OvirtDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lab.env_var, "wrong-password")
    exc = _open_fails(make_driver())
    assert isinstance(exc, AuthenticationError)
    assert exc.exit_code == 6 and "incorrect" in str(exc)
    assert "wrong-password" not in exc.one_line()


def test_untrusted_certificate(lab: OvirtLab) -> None:
    cfg = OvirtConfig.model_validate({**lab.endpoint_config("https"), "ca_file": None})
    exc = _open_fails(OvirtDriver(cfg, endpoint="lab"))
    assert isinstance(exc, AuthenticationError)
    assert "not trusted" in str(exc) and exc.hint and "ca_file" in exc.hint


def test_insecure_connects_and_warns(lab: OvirtLab, caplog: pytest.LogCaptureFixture) -> None:
    cfg = OvirtConfig.model_validate({**lab.endpoint_config("https"), "ca_file": None, "insecure": True})
    drv = OvirtDriver(cfg, endpoint="lab")
    with caplog.at_level(logging.WARNING, logger="ftbridge_ovirt"):
        drv.open()
    try:
        assert drv.probe().version.startswith("4.5")
    finally:
        drv.close()
    assert any("TLS verification is off" in r.getMessage() for r in caplog.records)


def test_unreachable_engine(lab: OvirtLab) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = OvirtConfig.model_validate(
        {**lab.endpoint_config("http"), "url": f"http://127.0.0.1:{port}/ovirt-engine/api"}
    )
    exc = _open_fails(OvirtDriver(cfg, endpoint="lab"))
    assert isinstance(exc, BackendUnavailable) and exc.retryable and exc.exit_code == 5


def test_plain_http_to_an_https_port(lab: OvirtLab) -> None:
    cfg = OvirtConfig.model_validate(
        {**lab.endpoint_config("http"), "url": f"http://127.0.0.1:{lab.port('https')}/ovirt-engine/api"}
    )
    exc = _open_fails(OvirtDriver(cfg, endpoint="lab"))
    assert isinstance(exc, BackendUnavailable)


@pytest.mark.parametrize(
    "url",
    [
        "https://engine.example.com/",
        "https://engine.example.com/ovirt-engine",
        "https://engine.example.com/api",
        "engine.example.com/ovirt-engine/api",
    ],
)
def test_url_without_api_path_is_a_config_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="/ovirt-engine/api"):
        OvirtConfig.model_validate({"driver": "ovirt", "url": url, "password": {"env": "X"}})
    data = {"endpoints": {"fra": {"driver": "ovirt", "url": url, "password": {"env": "X"}}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=tmp_path / "ftbridge.toml")
    assert "endpoints.fra.url" in str(info.value) and "/ovirt-engine/api" in str(info.value)


def test_url_is_normalised() -> None:
    cfg = OvirtConfig.model_validate(
        {"driver": "ovirt", "url": "https://e.example/ovirt-engine/api/", "password": {"env": "X"}}
    )
    assert cfg.url == "https://e.example/ovirt-engine/api"


def test_literal_password_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="never written in the config"):
        OvirtConfig.model_validate({"driver": "ovirt", "url": "https://e/ovirt-engine/api", "password": "x"})
    with pytest.raises(ValidationError, match="extra"):
        OvirtConfig.model_validate(
            {"driver": "ovirt", "url": "https://e/ovirt-engine/api", "password": {"env": "X"}, "pasword": 1}
        )


def test_missing_ca_file_names_the_key(lab: OvirtLab, tmp_path: Path) -> None:
    cfg = OvirtConfig.model_validate({**lab.endpoint_config("https"), "ca_file": str(tmp_path / "nope.pem")})
    exc = _open_fails(OvirtDriver(cfg, endpoint="lab"))
    assert isinstance(exc, ConfigError) and "ca_file" in str(exc)


def test_unset_password_variable(
    lab: OvirtLab, make_driver: Callable[..., OvirtDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(lab.env_var)
    exc = _open_fails(make_driver())
    assert isinstance(exc, MissingSecret) and lab.env_var in str(exc)


def test_engine_5xx_is_retryable(lab: OvirtLab, driver: OvirtDriver) -> None:
    lab.set_faults(error_rate=1.0)
    with pytest.raises(BackendUnavailable) as info:
        driver.inventory()
    assert info.value.retryable and "503" in str(info.value)
    lab.set_faults(error_rate=0.0)
    assert driver.inventory().vms


def test_slow_engine_times_out(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver("http", timeout=1)
    drv.open()
    try:
        lab.set_faults(slow=2.5)
        with pytest.raises(OperationTimeout) as info:
            drv.probe()
        assert info.value.retryable
    finally:
        lab.set_faults(slow=0.0)
        drv.close()


def test_rules_answer_as_conflicts(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm, disk = lab.id("vm", "vm1"), lab.id("disk", "vm1/d1")  # 100 GiB
    with pytest.raises(Conflict, match="Low disk space"):
        driver.move_disk(vm, disk, lab.id("sd", "sd-small"))
    lab.fail_datastore("rtm-nfs1")
    with pytest.raises(Conflict, match="inactive"):
        driver.move_disk(vm, disk, lab.id("sd", "sd-r1"))
    lab.restore()
    lab.set_faults(slow_jobs=5)
    driver.move_disk(vm, disk, lab.id("sd", "sd-r1"))
    with pytest.raises(Conflict, match="locked"):
        driver.move_disk(vm, disk, lab.id("sd", "sd-a2"))
    with pytest.raises(NotFound):
        driver.move_disk(vm, "no-such-disk", lab.id("sd", "sd-a2"))


def test_missing_sdk_is_one_line_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbridge_ovirt import client

    monkeypatch.setitem(sys.modules, "ovirtsdk4", None)
    with pytest.raises(DriverLoadError) as info:
        client.sdk()
    line = info.value.one_line()
    assert "ovirt-engine-sdk-python" in line and "pip install" in line and "libxml2-dev" in line
    assert "\n" not in line


def test_importing_the_driver_imports_no_sdk() -> None:
    code = (
        "import sys, ftbridge_ovirt.driver, ftbridge_ovirt.lab; "
        "bad = [m for m in ('ovirtsdk4', 'pycurl') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
