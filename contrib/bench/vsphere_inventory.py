#!/usr/bin/env python3
"""Inventory benchmark for the vsphere driver on a 5,000-VM vcsim (ftbridge's vSphere lab).

Prints, for the same estate: ftbridge's inventory (round trips, wall time), a naive per-VM walk
with pyVmomi (each VM's name, config and runtime read one by one, as most scripts do), and the
raw transfer of the very RetrievePropertiesEx requests ftbridge sends (the inventory, then the
file layout of the VMs with thin disks; curl with the session cookie, and a plain HTTP POST from
Python), neither parsed. Aims: <= 5 round trips, >= 5x faster than the
naive walk, within 2x of the raw transfer.

    python contrib/bench/vsphere_inventory.py [--vms 5000] [--repeat 3] [--plain/--extended]

Needs ftbridge-vsphere installed and Go + govmomi (contrib/vcsim/build.sh installs them).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ftbridge_vsphere import client, inventory
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best.append(time.perf_counter() - t)
    return statistics.median(best), out


def naive_walk(session: client.Session) -> int:
    """Per object, per property: what a first script against vCenter does."""
    vim = client.sdk().vim
    content = session.content
    n = 0
    for kind in (vim.HostSystem, vim.Datastore):
        view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
        for obj in view.view:
            _ = obj.name, obj.summary
            n += 1
        view.DestroyView()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    for vm in view.view:
        name, config, runtime = vm.name, vm.config, vm.runtime
        _ = (
            name,
            config.files.vmPathName,
            config.ftInfo,
            runtime.host,
            runtime.powerState,
            [d.backing.fileName for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)],
        )
        n += 1
    view.DestroyView()
    return n


def raw_request(session: client.Session) -> tuple[list[bytes], Any]:
    """The exact RetrievePropertiesEx bodies ftbridge sends: the inventory over a live
    ContainerView, then the file layout of the VMs with thin disks."""
    vim, vmodl = client.sdk().vim, client.sdk().vmodl
    view = session.content.viewManager.CreateContainerView(
        session.content.rootFolder, [getattr(vim, t) for t in inventory.SPECS], True
    )
    options = vmodl.query.PropertyCollector.RetrieveOptions()
    pc = session.content.propertyCollector
    bodies = [session.request_body(pc, "RetrievePropertiesEx", [session.filter_specs(view, inventory.SPECS), options])]
    thin = inventory.thin_vms(session.collect(inventory.SPECS))
    if thin:
        specs = session.object_specs("VirtualMachine", thin, inventory.LAYOUT_PATHS)
        bodies.append(session.request_body(pc, "RetrievePropertiesEx", [specs, options]))
    return bodies, view


def raw_python(lab: VsphereLab, session: client.Session, bodies: list[bytes]) -> int:
    size = 0
    for body in bodies:
        ctx = ssl.create_default_context(cafile=lab.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", lab.port, context=ctx)
        conn.request("POST", "/sdk", body, session.headers())
        resp = conn.getresponse()
        while chunk := resp.read(1 << 17):
            size += len(chunk)
        conn.close()
        assert resp.status == 200, resp.status
    return size


def raw_curl(lab: VsphereLab, session: client.Session, body_files: list[str]) -> int:
    h = session.headers()
    size = 0
    for body_file in body_files:
        cmd = ["curl", "-sS", "--fail", "--cacert", lab.ca_file, "-o", "/dev/null", "-w", "%{size_download}"]
        cmd += ["-H", f"Cookie: {h['Cookie']}", "-H", f"SOAPAction: {h['SOAPAction']}"]
        cmd += ["-H", f"Content-Type: {h['Content-Type']}", "--data-binary", f"@{body_file}"]
        out = subprocess.run([*cmd, f"https://127.0.0.1:{lab.port}/sdk"], capture_output=True, text=True, check=True)
        size += int(out.stdout)
    return size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=5000)
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--datastores", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--extended", action="store_true", help="the FT-capable lab instead of plain vcsim")
    ap.add_argument("--naive-repeat", type=int, default=1)
    args = ap.parse_args()

    t = time.perf_counter()
    lab = VsphereLab(
        plain=not args.extended, vms=args.vms, hosts=args.hosts, datastores=args.datastores, start_timeout=600
    )
    lab.start()
    print(
        f"vcsim: {lab.info['vms']} VMs, {lab.info['hosts']} hosts, {lab.info['datastores']} datastores "
        f"({'plain' if not args.extended else 'extended'}), up in {time.perf_counter() - t:.1f}s"
    )
    os.environ.update(lab.secrets())
    try:
        drv = VsphereDriver(VsphereConfig.model_validate(lab.endpoint_config()), endpoint="bench")
        drv.open()
        try:
            r0 = drv.ex_round_trips
            drv.inventory()
            trips = drv.ex_round_trips - r0
            ft_time, part = timed(drv.inventory, args.repeat)
            session = drv.session

            r0 = session.round_trips
            naive_time, n = timed(lambda: naive_walk(session), args.naive_repeat)
            naive_trips = (session.round_trips - r0) // args.naive_repeat

            bodies, view = raw_request(session)
            try:
                files = []
                for body in bodies:
                    with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as f:
                        f.write(body)
                    files.append(f.name)
                raw_py_time, size = timed(lambda: raw_python(lab, session, bodies), args.repeat)
                curl_time = None
                if shutil.which("curl"):
                    curl_time, _ = timed(lambda: raw_curl(lab, session, files), args.repeat)
                for name in files:
                    os.unlink(name)
            finally:
                view.DestroyView()
        finally:
            drv.close()
    finally:
        lab.stop()

    raw_time = curl_time if curl_time is not None else raw_py_time
    print(
        f"objects: {len(part.vms)} VMs, {sum(len(v.disks) for v in part.vms)} disks "
        f"({sum(d.thin for v in part.vms for d in v.disks)} thin), {len(part.datastores)} datastores, "
        f"{len(part.hosts)} hosts; replies {size / 1e6:.1f} MB in {len(bodies)} requests"
    )
    print(f"{'':28}{'round trips':>12}{'wall (median)':>16}")
    print(f"{'ftbridge inventory':28}{trips:>12}{ft_time:>15.2f}s")
    print(f"{'naive per-VM walk (pyVmomi)':28}{naive_trips:>12}{naive_time:>15.2f}s   ({n} objects)")
    if curl_time is not None:
        print(f"{'raw transfer (curl)':28}{len(bodies):>12}{curl_time:>15.2f}s")
    print(f"{'raw transfer (Python POST)':28}{len(bodies):>12}{raw_py_time:>15.2f}s")
    speedup, ratio = naive_time / ft_time, ft_time / raw_time
    print(
        f"ftbridge vs naive: {speedup:.1f}x faster (aim >= 5x); vs raw transfer: {ratio:.2f}x (aim <= 2x); "
        f"round trips {trips} (aim <= 5)"
    )
    ok = trips <= 5 and speedup >= 5 and ratio <= 2
    print("aims met" if ok else "aims NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
