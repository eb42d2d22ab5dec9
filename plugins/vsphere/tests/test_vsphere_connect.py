"""Bad input at the door: wrong password, untrusted certificate, TLS off, unreachable server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab

from ftbridge.errors import AuthenticationError, BackendUnavailable, ConfigError, MissingSecret


def test_wrong_password_is_an_authentication_error(
    make_driver: Callable[..., VsphereDriver], lab: VsphereLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLAB_BAD", "hunter2-wrong")
    drv = make_driver(password={"env": "VLAB_BAD"})
    with pytest.raises(AuthenticationError) as info:
        drv.open()
    assert "login rejected: wrong user name or password" in str(info.value)
    assert info.value.exit_code == 6
    assert "hunter2-wrong" not in info.value.one_line()
    assert lab.secrets()[lab.password_env] not in info.value.one_line()
    assert info.value.__cause__ is not None  # chained from the SDK's fault


def test_untrusted_certificate_is_refused_with_a_hint(make_driver: Callable[..., VsphereDriver]) -> None:
    drv = make_driver(ca_file=None)  # verify against the system store: the lab's self-signed cert fails
    with pytest.raises(AuthenticationError) as info:
        drv.open()
    assert "TLS certificate is not trusted" in str(info.value)
    assert "ca_file" in (info.value.hint or "")


def test_verification_off_connects_and_warns(
    make_driver: Callable[..., VsphereDriver], caplog: pytest.LogCaptureFixture
) -> None:
    drv = make_driver(ca_file=None, verify_tls=False)
    with caplog.at_level(logging.WARNING, logger="ftbridge_vsphere"):
        drv.open()
    try:
        assert drv.probe().version
        assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)
    finally:
        drv.close()


def test_missing_ca_file_is_a_config_error(make_driver: Callable[..., VsphereDriver]) -> None:
    with pytest.raises(ConfigError, match="ca_file"):
        make_driver(ca_file="/nonexistent/ca.pem").open()


def test_unset_password_variable(make_driver: Callable[..., VsphereDriver], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLAB_UNSET", raising=False)
    with pytest.raises(MissingSecret, match="VLAB_UNSET"):
        make_driver(password={"env": "VLAB_UNSET"}).open()


def test_nothing_listening_is_backend_unavailable(make_driver: Callable[..., Any]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendUnavailable) as info:
        make_driver(port=port).open()
    assert info.value.retryable


def test_operations_need_an_open_driver(make_driver: Callable[..., VsphereDriver]) -> None:
    with pytest.raises(BackendUnavailable, match="not open"):
        make_driver().inventory()
