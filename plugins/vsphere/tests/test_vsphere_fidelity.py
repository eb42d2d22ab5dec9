"""Fidelity: the lab's extensions really are the lab's. An unextended vcsim (what govmomi 0.24.2
serves by itself) answers Fault Tolerance calls with MethodNotFound. (That ftbridge's inventory
equals what plain pyVmomi reads is test_vsphere_truth.py, on plain vcsim and on the lab.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.lab import VsphereLab


@pytest.fixture(scope="module")
def plain_lab(vcsim_bin: Path) -> Iterator[VsphereLab]:
    lab = VsphereLab(plain=True, vms=2, hosts=2, datastores=1)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def test_plain_vcsim_lacks_fault_tolerance(plain_lab: VsphereLab, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbridge_vsphere import client

    from ftbridge.errors import UnsupportedOperation

    assert plain_lab.info["plain"] is True
    for k, v in plain_lab.secrets().items():
        monkeypatch.setenv(k, v)
    session = client.connect(VsphereConfig.model_validate(plain_lab.endpoint_config()), "plain")
    try:
        vm = session.collect({"VirtualMachine": ("name",)})[0].moid
        with pytest.raises(UnsupportedOperation, match="does not implement"):
            with client.translated("plain", "turning FT off"):
                session.turn_off_ft(vm)
    finally:
        session.close()
