"""The lab engine's objects as the engine's XML: the shapes the real SDK's readers expect.

Strings are built directly (not through ElementTree) so a 3,000-VM listing stays cheap. An
entity is written with ``id`` and ``href`` attributes; references to other entities are empty
elements with an id; sub-collections are ``<link rel=.. href=..>`` unless ``follow`` asked for
them, in which case they are inlined under their model name (``disk_attachments``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from ftbridge_ovirt.lab.engine import LabEngine
from ftbridge_ovirt.lab.model import Attachment, Cluster, DataCenter, Disk, Domain, Host, Job, Nic, Vm

API = "/ovirt-engine/api"
GIB = 1024**3
VERSION = {"major": 4, "minor": 5, "build": 6, "revision": 0, "full": "4.5.6-1.el9"}


def _e(tag: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def _ref(tag: str, obj_id: str | None, path: str) -> str:
    if not obj_id:
        return ""
    return f"<{tag} href={quoteattr(f'{API}/{path}/{obj_id}')} id={quoteattr(obj_id)}/>"


def _open(tag: str, obj_id: str, href: str) -> str:
    return f"<{tag} href={quoteattr(API + '/' + href)} id={quoteattr(obj_id)}>"


def _link(rel: str, href: str) -> str:
    return f"<link href={quoteattr(API + '/' + href)} rel={quoteattr(rel)}/>"


def date(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def collection(tag: str, items: Iterable[str]) -> str:
    return f"<{tag}>{''.join(items)}</{tag}>"


def document(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body).encode("utf-8")


# entities ----------------------------------------------------------------------------------
def api(eng: LabEngine, now: float) -> str:
    v = VERSION
    return ("<api>" + _link("vms", "vms") + _link("disks", "disks") + _link("jobs", "jobs")
            + "<product_info><instance_id>" + eng.uid("engine", "instance") + "</instance_id>"
            + "<name>oVirt Engine</name><vendor>ovirt.org</vendor>"
            + f"<version><build>{v['build']}</build><full_version>{v['full']}</full_version>"
            + f"<major>{v['major']}</major><minor>{v['minor']}</minor><revision>{v['revision']}</revision></version>"
            + "</product_info>"
            + f"<summary><hosts><active>{sum(h.status == 'up' for h in eng.hosts.values())}</active>"
            + f"<total>{len(eng.hosts)}</total></hosts><vms><active>"
            + f"{sum(v.status == 'up' for v in eng.vms.values())}</active><total>{len(eng.vms)}</total></vms></summary>"
            + f"<time>{date(now)}</time></api>")


def data_center(eng: LabEngine, dc: DataCenter, follow: set[str]) -> str:
    out = [_open("data_center", dc.id, f"datacenters/{dc.id}"), _e("name", dc.name),
           _e("local", dc.local), _e("status", "up" if eng.spm.get(dc.id) else "non_responsive"),
           _e("storage_format", "v5"),
           f"<version><major>{VERSION['major']}</major><minor>{VERSION['minor']}</minor></version>"]
    if "storage_domains" in follow:
        out.append(collection("storage_domains",
                              (storage_domain(eng, d, dc_view=True) for d in eng.domains.values() if d.dc == dc.id)))
    else:
        out.append(_link("storagedomains", f"datacenters/{dc.id}/storagedomains"))
    if "clusters" in follow:
        out.append(collection("clusters", (cluster(c) for c in eng.clusters.values() if c.dc == dc.id)))
    else:
        out.append(_link("clusters", f"datacenters/{dc.id}/clusters"))
    out.append("</data_center>")
    return "".join(out)


def cluster(c: Cluster) -> str:
    return (_open("cluster", c.id, f"clusters/{c.id}") + _e("name", c.name)
            + f"<version><major>{VERSION['major']}</major><minor>{VERSION['minor']}</minor></version>"
            + _ref("data_center", c.dc, "datacenters") + "</cluster>")


def host(eng: LabEngine, h: Host) -> str:
    dc = eng.clusters[h.cluster].dc
    spm = "spm" if eng.spm.get(dc) == h.id else "none"
    return (_open("host", h.id, f"hosts/{h.id}") + _e("name", h.name) + _e("address", f"{h.name}.lab")
            + _e("memory", h.memory) + f"<spm><priority>{h.spm_priority}</priority><status>{spm}</status></spm>"
            + _e("status", h.status) + _e("type", "rhel") + _ref("cluster", h.cluster, "clusters") + "</host>")


def storage_domain(eng: LabEngine, d: Domain, *, dc_view: bool = False) -> str:
    href = f"datacenters/{d.dc}/storagedomains/{d.id}" if dc_view else f"storagedomains/{d.id}"
    avail = eng.available(d.id)
    used = d.capacity - avail
    storage = (f"<storage><type>{d.storage_type}</type>"
               + (_e("address", d.address) + _e("path", d.path) if d.storage_type in ("nfs", "glusterfs", "posixfs")
                  else "") + "</storage>")
    out = [_open("storage_domain", d.id, href), _e("name", d.name), _e("available", avail), _e("used", used),
           _e("committed", eng.used(d.id)), _e("external_status", "ok"), _e("master", False),
           _e("storage_format", "v5"), _e("type", d.type), storage]
    if dc_view or d.dc is None:
        out.append(_e("status", d.status if d.dc else "unattached"))
    if d.dc:
        out.append(f"<data_centers>{_ref('data_center', d.dc, 'datacenters')}</data_centers>")
        if dc_view:
            out.append(_ref("data_center", d.dc, "datacenters"))
    if d.host:
        out.append(_ref("host", d.host, "hosts"))
    out.append(_link("disks", f"storagedomains/{d.id}/disks"))
    out.append("</storage_domain>")
    return "".join(out)


def disk(eng: LabEngine, k: Disk, owner: Vm | None | bool = False) -> str:
    """``owner``: the VM it is attached to when the caller knows (False: look it up)."""
    vm = eng.vm_of_disk(k.id) if owner is False else (owner if isinstance(owner, Vm) else None)
    return (_open("disk", k.id, f"disks/{k.id}") + _e("name", k.alias) + _e("description", k.description or None)
            + _e("actual_size", k.size) + _e("alias", k.alias) + _e("content_type", "data") + _e("format", "cow")
            + _e("image_id", k.id) + _e("provisioned_size", k.size) + _e("shareable", False) + _e("sparse", True)
            + _e("status", k.status) + _e("storage_type", k.storage_type) + _e("total_size", k.size)
            + _e("wipe_after_delete", False)
            + f"<storage_domains>{_ref('storage_domain', k.domain, 'storagedomains')}</storage_domains>"
            + (_ref("vm", vm.id, "vms") if vm else "")
            + "</disk>")


def attachment(eng: LabEngine, vm: Vm, a: Attachment, follow_disk: bool) -> str:
    href = f"vms/{vm.id}/diskattachments/{a.disk}"
    d = eng.disks.get(a.disk)
    inner = disk(eng, d, vm) if (follow_disk and d is not None) else _ref("disk", a.disk, "disks")
    return (_open("disk_attachment", a.disk, href) + _e("active", a.active) + _e("bootable", a.bootable)
            + _e("interface", a.interface) + _e("pass_discard", False) + _e("read_only", False)
            + _e("uses_scsi_reservation", False) + inner + _ref("vm", vm.id, "vms") + "</disk_attachment>")


def nic(vm: Vm, n: Nic) -> str:
    return (_open("nic", n.id, f"vms/{vm.id}/nics/{n.id}") + _e("name", n.name) + _e("interface", "virtio")
            + _e("linked", n.linked) + _e("plugged", n.plugged)
            + f"<mac><address>56:6f:{':'.join(n.id[i:i + 2] for i in range(0, 8, 2))}</address></mac>"
            + _ref("vnic_profile", n.profile, "vnicprofiles") + _ref("vm", vm.id, "vms") + "</nic>")


def vm(eng: LabEngine, v: Vm, follow: set[str]) -> str:
    out = [_open("vm", v.id, f"vms/{v.id}"), _e("name", v.name), _e("description", v.description or None),
           f"<cpu><topology><cores>1</cores><sockets>{v.vcpus}</sockets><threads>1</threads></topology></cpu>",
           f"<high_availability><enabled>{'true' if v.ha else 'false'}</enabled><priority>1</priority>"
           "</high_availability>"]
    if v.lease:
        out.append(f"<lease>{_ref('storage_domain', v.lease, 'storagedomains')}</lease>")
    out += [_e("memory", v.memory), _e("stateless", v.stateless), _e("status", v.status), _e("type", "server"),
            _ref("cluster", v.cluster, "clusters"), _ref("host", v.host, "hosts"),
            "<template href=\"/ovirt-engine/api/templates/00000000-0000-0000-0000-000000000000\" "
            "id=\"00000000-0000-0000-0000-000000000000\"/>"]
    if "disk_attachments" in follow or "disk_attachments.disk" in follow:
        deep = "disk_attachments.disk" in follow
        out.append(collection("disk_attachments", (attachment(eng, v, a, deep) for a in v.attachments)))
    else:
        out.append(_link("diskattachments", f"vms/{v.id}/diskattachments"))
    if "tags" in follow:
        out.append(collection("tags", (f"<tag id={quoteattr(eng.uid('tag', t))}>{_e('name', t)}</tag>"
                                       for t in v.tags)))
    else:
        out.append(_link("tags", f"vms/{v.id}/tags"))
    if "nics" in follow:
        out.append(collection("nics", (nic(v, n) for n in v.nics)))
    else:
        out.append(_link("nics", f"vms/{v.id}/nics"))
    out.append("</vm>")
    return "".join(out)


def job(j: Job) -> str:
    return (_open("job", j.id, f"jobs/{j.id}") + _e("description", j.description) + _e("auto_cleared", True)
            + _e("external", False) + _e("last_updated", date(j.end or j.start))
            + _e("start_time", date(j.start)) + (_e("end_time", date(j.end)) if j.end else "")
            + _e("status", j.status) + _link("steps", f"jobs/{j.id}/steps") + "</job>")


def action(status: str = "complete", job_id: str | None = None) -> str:
    return "<action>" + (_ref("job", job_id, "jobs") if job_id else "") + _e("status", status) + "</action>"


def fault(reason: str, detail: str) -> str:
    return f"<fault>{_e('detail', detail)}{_e('reason', reason)}</fault>"


def action_fault(reason: str, detail: str) -> str:
    return f"<action><fault>{_e('detail', detail)}{_e('reason', reason)}</fault><status>failed</status></action>"
