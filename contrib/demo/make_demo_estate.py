"""Write ftbridge/demo/estate.toml: the embedded demo estate (deterministic).

Three endpoints shaped like a vSphere, a Proxmox VE and an oVirt estate across four sites
(ams1 and ams2 of a stretched vSphere cluster, rtm1, fra1), about 60 VMs, with realistic
violations of every audit rule. Run: python contrib/demo/make_demo_estate.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "ftbridge" / "demo" / "estate.toml"


def val(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(val(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{ "
            + ", ".join(f"{k} = {val(x)}" if k.isidentifier() else f'"{k}" = {val(x)}' for k, x in v.items())
            + " }"
        )
    raise TypeError(type(v))


def vm(
    id: str, name: str, host: str, disks: list[tuple[str, int, str]], *, secs: list[dict] | None = None, **kw: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "name": name,
        "host": host,
        **kw,
        "disks": [{"id": d, "size_gib": s, "datastore": ds} for d, s, ds in disks],
        **({"secondaries": secs} if secs else {}),
    }


def vsphere() -> dict[str, Any]:
    hosts = [
        {"id": f"host-{i}", "name": n, "cluster": "ams-stretch"}
        for i, n in enumerate(["esx-ams1-01", "esx-ams1-02", "esx-ams2-01", "esx-ams2-02"], start=11)
    ]
    allh = [h["id"] for h in hosts]
    ds = [
        {"id": "datastore-101", "name": "ams1-netapp-a-01", "kind": "vmfs", "hosts": allh, "capacity_gib": 4096},
        {"id": "datastore-102", "name": "ams1-netapp-a-02", "kind": "vmfs", "hosts": allh, "capacity_gib": 4096},
        {"id": "datastore-103", "name": "ams1-pure-b-01", "kind": "vmfs", "hosts": allh, "capacity_gib": 2048},
        {"id": "datastore-201", "name": "ams2-netapp-c-01", "kind": "vmfs", "hosts": allh, "capacity_gib": 4096},
        {"id": "datastore-202", "name": "ams2-netapp-c-02", "kind": "nfs", "hosts": allh, "capacity_gib": 2048},
        {"id": "datastore-111", "name": "esx-ams1-01-local", "kind": "vmfs", "hosts": ["host-11"], "capacity_gib": 900},
        {"id": "datastore-113", "name": "esx-ams2-01-local", "kind": "vmfs", "hosts": ["host-13"], "capacity_gib": 900},
        # a small, nearly full datastore: over its headroom
        {
            "id": "datastore-104",
            "name": "ams1-pure-b-02",
            "kind": "vmfs",
            "hosts": allh,
            "capacity_gib": 1024,
            "reserved_gib": 800,
        },
    ]
    A1, A2, B1, B2, C1, C2, L1, L3 = (
        "datastore-101",
        "datastore-102",
        "datastore-103",
        "datastore-104",
        "datastore-201",
        "datastore-202",
        "datastore-111",
        "datastore-113",
    )

    def ft(host: str, dsid: str, disks: list[str], meta: str = C2, **kw: Any) -> dict[str, Any]:
        return {
            "mechanism": "vsphere-ft",
            "host": host,
            "config_datastore": dsid,
            "disks": {d: dsid for d in disks},
            "metadata_datastore": meta,
            "state": "in_sync",
            "lag_s": 0,
            **kw,
        }

    # FT VMs are few and small, as on a real cluster: at most 4 FT VMs and 8 FT vCPUs per host
    vms = [
        # compliant FT pairs: primary in ams1, secondary in ams2
        vm(
            "vm-1001",
            "ams-sql01",
            "host-11",
            [("2000", 200, A1), ("2001", 100, A1)],
            vcpus=2,
            memory_gib=32,
            tags=["tier1"],
            secs=[ft("host-13", C1, ["2000", "2001"])],
        ),
        vm(
            "vm-1002",
            "ams-sql02",
            "host-12",
            [("2000", 200, A2)],
            vcpus=2,
            memory_gib=32,
            tags=["tier1"],
            secs=[ft("host-14", C1, ["2000"])],
        ),
        vm(
            "vm-1003",
            "ams-dc01",
            "host-11",
            [("2000", 60, B1)],
            vcpus=1,
            memory_gib=8,
            tags=["tier1"],
            secs=[ft("host-14", C2, ["2000"])],
        ),
        # FT secondary in the same site (ams1): not separated at site level
        vm(
            "vm-1004",
            "ams-erp01",
            "host-12",
            [("2000", 300, A1)],
            vcpus=2,
            memory_gib=64,
            tags=["tier1"],
            secs=[ft("host-11", B1, ["2000"])],
        ),
        # FT secondary on the same array as the primary (both in ams2)
        vm(
            "vm-1005",
            "ams-erp02",
            "host-13",
            [("2000", 150, C1)],
            vcpus=1,
            memory_gib=16,
            tags=["tier1"],
            secs=[ft("host-14", C2, ["2000"], meta=A2)],
        ),
        # FT metadata on a local datastore
        vm(
            "vm-1006",
            "ams-mq01",
            "host-11",
            [("2000", 40, A2)],
            vcpus=1,
            memory_gib=8,
            tags=["tier1"],
            secs=[ft("host-13", C1, ["2000"], meta=L1)],
        ),
        # tier1 without any secondary
        vm("vm-1007", "ams-pay01", "host-12", [("2000", 80, A2)], vcpus=1, memory_gib=8, tags=["tier1"]),
        # tier1 primary on a host-local datastore and no secondary
        vm("vm-1009", "ams-ldap01", "host-13", [("2000", 30, L3)], vcpus=1, memory_gib=4, tags=["tier1"]),
        # 12 vCPUs: beyond FT's 8 per VM, so the missing secondary cannot be fixed
        vm("vm-1010", "ams-dwh01", "host-13", [("2000", 500, C1)], vcpus=12, memory_gib=128, tags=["tier1"]),
        # a second payment VM, not tier1: no secondary required
        vm("vm-1008", "ams-pay02", "host-14", [("2000", 80, A1)], vcpus=2, memory_gib=8, tags=["pci"]),
    ]
    for i in range(12):
        h = allh[i % 4]
        d = [A1, A2, C1, C2, B1, B2][i % 6]
        if i in (3, 7):
            d = L3 if h == "host-13" else d
        vms.append(
            vm(
                f"vm-{1100 + i}",
                f"ams-web{i + 1:02d}",
                h,
                [("2000", 40 + 10 * (i % 3), d)],
                vcpus=2,
                memory_gib=4,
                tags=["web"],
            )
        )
    vms.append(
        vm(
            "vm-1190",
            "ams-build01",
            "host-13",
            [("2000", 120, L3), ("2001", 200, L3)],
            vcpus=4,
            memory_gib=16,
            tags=["dev"],
        )
    )
    networks = [
        {"id": "network-10", "name": "VM Network", "kind": "portgroup", "vlan": 10},
        {"id": "dvportgroup-100", "name": "dvpg-prod", "kind": "dvportgroup", "vlan": 100},
        {"id": "dvportgroup-200", "name": "dvpg-db", "kind": "dvportgroup", "vlan": 200},
    ]
    for n, v in enumerate(vms):
        net = "dvportgroup-200" if v["name"].startswith(("ams-sql", "ams-dwh")) else "dvportgroup-100"
        v["nics"] = [{"id": "4000", "network": net, "mac": f"00:50:56:00:10:{n:02x}", "model": "vmxnet3"}]
    return {"flavor": "vsphere", "hosts": hosts, "datastores": ds, "networks": networks, "vms": vms}


def proxmox() -> dict[str, Any]:
    nodes = ["pve-rtm-1", "pve-rtm-2", "pve-rtm-3"]
    hosts = [{"id": n, "name": n, "cluster": "rtm", "memory_gib": 256} for n in nodes]
    ds = [
        {"id": "ceph-rtm", "name": "ceph-rtm", "kind": "rbd", "hosts": nodes, "capacity_gib": 8192},
        {"id": "nfs-rtm-b", "name": "nfs-rtm-b", "kind": "nfs", "hosts": nodes, "capacity_gib": 4096},
        {"id": "nfs-rtm-c", "name": "nfs-rtm-c", "kind": "nfs", "hosts": nodes, "capacity_gib": 2048},
    ]
    for n in nodes:
        ds.append(
            {"id": f"local-zfs@{n}", "name": f"local-zfs@{n}", "kind": "zfspool", "hosts": [n], "capacity_gib": 1800}
        )
        ds.append(
            {"id": f"local-lvm@{n}", "name": f"local-lvm@{n}", "kind": "lvmthin", "hosts": [n], "capacity_gib": 400}
        )

    def repl(src: str, dst: str, disks: list[str], lag: int = 300, state: str = "in_sync") -> dict[str, Any]:
        return {
            "mechanism": "pve-replication",
            "host": dst,
            "disks": {d: f"local-zfs@{dst}" for d in disks},
            "state": state,
            "lag_s": lag,
        }

    def standby(dsid: str, disks: list[str], host: str | None = None, lag: int = 3600) -> dict[str, Any]:
        s = {"mechanism": "pve-standby", "disks": {d: dsid for d in disks}, "state": "in_sync", "lag_s": lag}
        if host:
            s["host"] = host
        return s

    Z = lambda n: f"local-zfs@{n}"  # noqa: E731
    vms = [
        # ZFS-replicated pairs (policy zfs-replicated)
        vm(
            "100",
            "rtm-pg01",
            "pve-rtm-1",
            [("scsi0", 100, Z("pve-rtm-1"))],
            vcpus=4,
            memory_gib=16,
            tags=["zfs"],
            secs=[repl("pve-rtm-1", "pve-rtm-3", ["scsi0"], lag=120)],
        ),
        vm(
            "101",
            "rtm-pg02",
            "pve-rtm-2",
            [("scsi0", 100, Z("pve-rtm-2"))],
            vcpus=4,
            memory_gib=16,
            tags=["zfs"],
            secs=[repl("pve-rtm-2", "pve-rtm-3", ["scsi0"], lag=240)],
        ),
        # replication lagging 3 h behind a 15 min RPO
        vm(
            "102",
            "rtm-redis01",
            "pve-rtm-1",
            [("scsi0", 20, Z("pve-rtm-1"))],
            vcpus=2,
            memory_gib=8,
            tags=["zfs"],
            secs=[repl("pve-rtm-1", "pve-rtm-2", ["scsi0"], lag=10800)],
        ),
        # replication job failing
        vm(
            "103",
            "rtm-redis02",
            "pve-rtm-2",
            [("scsi0", 20, Z("pve-rtm-2"))],
            vcpus=2,
            memory_gib=8,
            tags=["zfs"],
            secs=[repl("pve-rtm-2", "pve-rtm-1", ["scsi0"], state="broken")],
        ),
        # a zfs-tagged VM with no replication job
        vm("104", "rtm-kafka01", "pve-rtm-3", [("scsi0", 250, Z("pve-rtm-3"))], vcpus=4, memory_gib=16, tags=["zfs"]),
        # tier1 on ceph with a standby copy on nfs-rtm-b (compliant)
        vm(
            "110",
            "rtm-app01",
            "pve-rtm-1",
            [("scsi0", 60, "ceph-rtm")],
            vcpus=2,
            memory_gib=8,
            tags=["tier1"],
            secs=[standby("nfs-rtm-b", ["scsi0"], lag=600)],
        ),
        # standby copy on the same ceph cluster as the primary: not separated
        vm(
            "111",
            "rtm-app02",
            "pve-rtm-2",
            [("scsi0", 60, "ceph-rtm")],
            vcpus=2,
            memory_gib=8,
            tags=["tier1"],
            secs=[standby("ceph-rtm", ["scsi0"], lag=600)],
        ),
        # standby clone pinned on the primary's own node
        vm(
            "112",
            "rtm-app03",
            "pve-rtm-3",
            [("scsi0", 40, "ceph-rtm")],
            vcpus=2,
            memory_gib=8,
            tags=["tier1"],
            secs=[standby("nfs-rtm-c", ["scsi0"], host="pve-rtm-3", lag=900)],
        ),
        # tier1 on node-local LVM without any copy
        vm(
            "113",
            "rtm-git01",
            "pve-rtm-1",
            [("scsi0", 80, "local-lvm@pve-rtm-1"), ("scsi1", 120, "local-lvm@pve-rtm-1")],
            vcpus=2,
            memory_gib=8,
            tags=["tier1"],
        ),
    ]
    for i in range(11):
        n = nodes[i % 3]
        d = ["ceph-rtm", "nfs-rtm-b", "ceph-rtm", f"local-lvm@{n}"][i % 4]
        vms.append(
            vm(
                str(120 + i),
                f"rtm-svc{i + 1:02d}",
                n,
                [("scsi0", 30 + 5 * (i % 4), d)],
                vcpus=2,
                memory_gib=4,
                tags=["svc"],
                secs=[standby("nfs-rtm-c" if d == "ceph-rtm" else "ceph-rtm", ["scsi0"], lag=1800)]
                if i % 2 == 0
                else None,
            )
        )
    networks = [
        {"id": "vmbr0", "name": "vmbr0", "kind": "bridge"},
        {"id": "vnprod", "name": "vnprod", "kind": "vnet", "vlan": 100},
        {"id": "vndb", "name": "vndb", "kind": "vnet", "vlan": 200},
    ]
    for n, v in enumerate(vms):
        v["nics"] = [{"id": "net0", "network": "vmbr0", "mac": f"bc:24:11:00:20:{n:02x}", "model": "virtio"}]
    return {"flavor": "proxmox", "hosts": hosts, "datastores": ds, "networks": networks, "vms": vms}


def ovirt() -> dict[str, Any]:
    hosts = [{"id": f"h{i}", "name": f"ovirt-fra-0{i}", "cluster": "fra-prod", "memory_gib": 384} for i in (1, 2, 3)]
    allh = [h["id"] for h in hosts]
    ds = [
        {"id": "sd-a", "name": "fra-iscsi-a", "kind": "iscsi", "hosts": allh, "capacity_gib": 6144},
        {"id": "sd-b", "name": "fra-iscsi-b", "kind": "iscsi", "hosts": allh, "capacity_gib": 8192},
        {"id": "sd-c", "name": "fra-nfs-c", "kind": "nfs", "hosts": allh, "capacity_gib": 3072},
        {"id": "sd-l", "name": "fra-localfs-01", "kind": "localfs", "hosts": ["h1"], "capacity_gib": 800},
        # nearly full: over its headroom
        {"id": "sd-d", "name": "fra-nfs-d", "kind": "nfs", "hosts": allh, "capacity_gib": 1024, "reserved_gib": 850},
    ]

    def copy(dsid: str, disks: list[str], lag: int = 3600) -> dict[str, Any]:
        return {"mechanism": "ovirt-copy", "disks": {d: dsid for d in disks}, "state": "in_sync", "lag_s": lag}

    vms = [
        vm(
            "vm-a1",
            "fra-oracle01",
            "h1",
            [("d-a1-0", 400, "sd-a"), ("d-a1-1", 200, "sd-a")],
            vcpus=8,
            memory_gib=64,
            tags=["tier1"],
            ha=True,
            secs=[copy("sd-b", ["d-a1-0", "d-a1-1"], lag=1200)],
        ),
        vm(
            "vm-a2",
            "fra-oracle02",
            "h2",
            [("d-a2-0", 400, "sd-b")],
            vcpus=8,
            memory_gib=64,
            tags=["tier1"],
            ha=True,
            secs=[copy("sd-a", ["d-a2-0"], lag=1500)],
        ),
        # copy on the same array as the primary
        vm(
            "vm-a3",
            "fra-crm01",
            "h1",
            [("d-a3-0", 120, "sd-a")],
            vcpus=4,
            memory_gib=16,
            tags=["tier1"],
            ha=True,
            secs=[copy("sd-a", ["d-a3-0"], lag=600)],
        ),
        # copy a day old against a 1 h RPO
        vm(
            "vm-a4",
            "fra-crm02",
            "h2",
            [("d-a4-0", 120, "sd-b")],
            vcpus=4,
            memory_gib=16,
            tags=["tier1"],
            ha=True,
            secs=[copy("sd-c", ["d-a4-0"], lag=86400)],
        ),
        # tier1 on local storage, no copy
        vm("vm-a5", "fra-edi01", "h1", [("d-a5-0", 50, "sd-l")], vcpus=2, memory_gib=8, tags=["tier1"]),
        # tier1 without a copy
        vm("vm-a6", "fra-hr01", "h3", [("d-a6-0", 90, "sd-c")], vcpus=2, memory_gib=8, tags=["tier1"], ha=True),
        # 5 TiB: no domain outside its array has room for a copy
        vm("vm-a7", "fra-archive01", "h3", [("d-a7-0", 5200, "sd-b")], vcpus=2, memory_gib=8, tags=["tier1"]),
    ]
    for i in range(11):
        h = allh[i % 3]
        d = ["sd-a", "sd-b", "sd-c", "sd-d"][i % 4]
        vms.append(
            vm(
                f"vm-b{i}",
                f"fra-app{i + 1:02d}",
                h,
                [(f"d-b{i}-0", 40 + 10 * (i % 3), d)],
                vcpus=2,
                memory_gib=4,
                tags=["app"],
                secs=[copy("sd-c" if d != "sd-c" else "sd-a", [f"d-b{i}-0"], lag=2400)] if i % 3 else None,
            )
        )
    networks = [
        {"id": "net-mgmt", "name": "ovirtmgmt", "kind": "ovirt-network"},
        {"id": "net-prod", "name": "prod", "kind": "ovirt-network", "vlan": 100},
        {"id": "net-db", "name": "db", "kind": "ovirt-network", "vlan": 200},
    ]
    for n, v in enumerate(vms):
        v["nics"] = [
            {"id": f"nic-{v['id']}", "network": "net-prod", "mac": f"56:6f:00:00:30:{n:02x}", "model": "virtio"}
        ]
    return {"flavor": "ovirt", "hosts": hosts, "datastores": ds, "networks": networks, "vms": vms}


def emit(estates: dict[str, dict[str, Any]]) -> str:
    out = [
        "# The embedded demo estate, written by contrib/demo/make_demo_estate.py: do not edit by hand.",
        "# Three endpoints shaped like vSphere, Proxmox VE and oVirt; seeds the sim driver and the labs.",
        "",
    ]
    for name, body in estates.items():
        out += [f"[estates.{name}]", f"flavor = {val(body['flavor'])}", ""]
        for section in ("hosts", "datastores", "networks", "vms"):
            for item in body.get(section, []):
                out.append(f"[[estates.{name}.{section}]]")
                out += [f"{k} = {val(v)}" for k, v in item.items()]
                out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    OUT.write_text(emit({"vc-ams": vsphere(), "pve-rtm": proxmox(), "ovirt-fra": ovirt()}), encoding="utf-8")
    print(f"wrote {OUT}")
