"""A canary secret, used as the API token and as a password, never shows up anywhere: not in
logs (at DEBUG, the SDK's included), exceptions and their causes, handles, or inventory."""

from __future__ import annotations

import json
import logging

import pytest
from pve_helpers import LabFactory, make_driver

from ftbridge.errors import FtbridgeError
from ftbridge.inventory import Inventory
from ftbridge.model import EndpointInfo

CANARY = "canary-7f3e9c1d-5b2a-4e8f-9a6d-0c1b2e3f4a5b"


def _chain(exc: BaseException) -> list[str]:
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen), repr(getattr(seen, "args", ""))]
        seen = seen.__cause__ or seen.__context__
    return out


def test_canary_never_leaks(
    lab_factory: LabFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("proxmoxer", "proxmoxer.core", "proxmoxer.backends.https", "urllib3", "ftbridge_proxmox"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv("CANARY", CANARY)
    texts: list[str] = []

    lab = lab_factory(token=CANARY)  # the canary is the valid token here
    drv = make_driver(lab, token={"env": "CANARY"})
    texts.append(repr(drv.cfg))
    drv.open()
    try:
        part = drv.inventory()
        inv = Inventory([EndpointInfo("pve", "proxmox")], part.hosts, part.datastores, part.vms)
        texts.append(json.dumps(inv.to_dict()))
        op = drv.move_disk("102", "scsi0", "nfs-b")
        texts.append(json.dumps(op.to_dict()))
        texts.append(repr(drv.wait(op, timeout=30, interval=0.05)))
        lab.inject(error_rate=1.0)
        for call in (drv.inventory, lambda: drv.move_disk("102", "scsi0", "ceph-a")):
            with pytest.raises(FtbridgeError) as info:
                call()
            texts += _chain(info.value)
        lab.restore()
    finally:
        drv.close()

    other = lab_factory()  # here the canary is a wrong token, then a wrong password
    for creds in ({"token": {"env": "CANARY"}}, {"token": None, "token_name": None, "password": {"env": "CANARY"}}):
        bad = make_driver(other, **creds)
        with pytest.raises(FtbridgeError) as info:
            bad.open()
        bad.close()
        texts += _chain(info.value) + [info.value.one_line()]

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "the test should have captured some logging"
    everything = "\n".join(texts) + logged
    assert CANARY not in everything
