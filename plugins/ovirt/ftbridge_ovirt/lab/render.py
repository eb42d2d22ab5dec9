"""The lab engine's objects as the engine's XML: the shapes the real SDK's readers expect.

Strings are built directly (not through ElementTree) so a 3,000-VM listing stays cheap. An
entity is written with ``id`` and ``href`` attributes; references to other entities are empty
elements with an id; sub-collections are ``<link rel=.. href=..>`` unless ``follow`` asked for
them, in which case they are inlined under their model name (``disk_attachments``).

Shapes follow the engine's REST mappers (ovirt-engine, backend/manager/modules/restapi/types):
``StorageDomainMapper`` writes no ``<type>`` for a managed-block-storage domain (its
``StorageDomainType`` has no case for it) and sizes in whole GiB; a direct-LUN disk has
``lun_storage`` and no storage domain; the hosted engine VM has ``origin`` ``managed_hosted_engine``;
a filtered (non-admin) caller gets VMs without their host (``BackendVmsResource.removeRestrictedInfo``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from ftbridge_ovirt.lab.engine import LabEngine
from ftbridge_ovirt.lab.model import (
    GIB,
    Attachment,
    Cluster,
    DataCenter,
    Disk,
    Domain,
    Event,
    Host,
    Job,
    Network,
    Nic,
    OvfEntity,
    Profile,
    Snapshot,
    Template,
    Vm,
)

API = "/ovirt-engine/api"
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


def _version() -> str:
    return f"<version><major>{VERSION['major']}</major><minor>{VERSION['minor']}</minor></version>"


# entities ----------------------------------------------------------------------------------
def api(eng: LabEngine, now: float) -> str:
    v = VERSION
    return (
        "<api>"
        + _link("vms", "vms")
        + _link("disks", "disks")
        + _link("jobs", "jobs")
        + _link("events", "events")
        + "<product_info><instance_id>"
        + eng.uid("engine", "instance")
        + "</instance_id>"
        + "<name>oVirt Engine</name><vendor>ovirt.org</vendor>"
        + f"<version><build>{v['build']}</build><full_version>{v['full']}</full_version>"
        + f"<major>{v['major']}</major><minor>{v['minor']}</minor><revision>{v['revision']}</revision></version>"
        + "</product_info>"
        + f"<summary><hosts><active>{sum(h.status == 'up' for h in eng.hosts.values())}</active>"
        + f"<total>{len(eng.hosts)}</total></hosts><vms><active>"
        + f"{sum(v.status == 'up' for v in eng.vms.values())}</active><total>{len(eng.vms)}</total></vms></summary>"
        + f"<time>{date(now)}</time></api>"
    )


def data_center(eng: LabEngine, dc: DataCenter, follow: set[str]) -> str:
    out = [
        _open("data_center", dc.id, f"datacenters/{dc.id}"),
        _e("name", dc.name),
        _e("local", dc.local),
        _e("status", "up" if eng.spm.get(dc.id) else "non_responsive"),
        _e("storage_format", "v5"),
        _version(),
    ]
    if "storage_domains" in follow:
        out.append(
            collection(
                "storage_domains",
                (storage_domain(eng, d, dc_view=True) for d in eng.domains.values() if d.dc == dc.id and d.imported),
            )
        )
    else:
        out.append(_link("storagedomains", f"datacenters/{dc.id}/storagedomains"))
    if "clusters" in follow:
        out.append(collection("clusters", (cluster(c) for c in eng.clusters.values() if c.dc == dc.id)))
    else:
        out.append(_link("clusters", f"datacenters/{dc.id}/clusters"))
    if "networks" in follow or "networks.vnic_profiles" in follow:
        deep = "networks.vnic_profiles" in follow
        out.append(collection("networks", (network(eng, n, deep) for n in eng.networks.values() if n.dc == dc.id)))
    else:
        out.append(_link("networks", f"datacenters/{dc.id}/networks"))
    out.append("</data_center>")
    return "".join(out)


def cluster(c: Cluster) -> str:
    return (
        _open("cluster", c.id, f"clusters/{c.id}")
        + _e("name", c.name)
        + _version()
        + _ref("data_center", c.dc, "datacenters")
        + "</cluster>"
    )


def network(eng: LabEngine, n: Network, follow_profiles: bool = False) -> str:
    out = [
        _open("network", n.id, f"networks/{n.id}"),
        _e("name", n.name),
        _e("mtu", 0),
        _e("required", True),
        _e("vm", True),
        _e("usages", None),
    ]
    if n.vlan is not None:
        out.append(f"<vlan id={quoteattr(str(n.vlan))}/>")
    out.append(_ref("data_center", n.dc, "datacenters"))
    if follow_profiles:
        out.append(collection("vnic_profiles", (vnic_profile(p) for p in eng.profiles.values() if p.network == n.id)))
    else:
        out.append(_link("vnicprofiles", f"networks/{n.id}/vnicprofiles"))
    out.append("</network>")
    return "".join(out)


def vnic_profile(p: Profile) -> str:
    return (
        _open("vnic_profile", p.id, f"vnicprofiles/{p.id}")
        + _e("name", p.name)
        + _e("pass_through", None)
        + _ref("network", p.network, "networks")
        + "</vnic_profile>"
    )


def host(eng: LabEngine, h: Host) -> str:
    dc = eng.clusters[h.cluster].dc
    spm = "spm" if eng.spm.get(dc) == h.id else "none"
    return (
        _open("host", h.id, f"hosts/{h.id}")
        + _e("name", h.name)
        + _e("address", f"{h.name}.lab")
        + _e("memory", h.memory)
        + f"<power_management><enabled>{'true' if h.pm else 'false'}</enabled>"
        + ("<kdump_detection>false</kdump_detection>" if h.pm else "")
        + "</power_management>"
        + f"<spm><priority>{h.spm_priority}</priority><status>{spm}</status></spm>"
        + _e("status", h.status)
        + _e("type", "rhel")
        + _ref("cluster", h.cluster, "clusters")
        + "</host>"
    )


def _storage(eng: LabEngine, d: Domain) -> str:
    inner = f"<type>{d.storage_type}</type>"
    if d.file_based:
        inner += _e("address", d.address or None) + _e("path", d.path or None) + _e("vfs_type", d.vfs_type or None)
    elif d.block_based:
        units = "".join(
            f"<logical_unit id={quoteattr(_lun_id(d, t))}>"
            + (_e("address", d.address) + _e("port", d.port) if d.storage_type == "iscsi" else "")
            + _e("size", d.capacity)
            + (_e("target", t) if d.storage_type == "iscsi" else "")
            + "</logical_unit>"
            for t in (d.targets or [""])
        )
        inner += f"<volume_group id={quoteattr('vg-' + d.id[:8])}><logical_units>{units}</logical_units></volume_group>"
    return f"<storage>{inner}</storage>"


def _lun_id(d: Domain, target: str) -> str:
    return "36001405" + (d.id.replace("-", "") + target.encode().hex())[:24]


def storage_domain(eng: LabEngine, d: Domain, *, dc_view: bool = False) -> str:
    href = f"datacenters/{d.dc}/storagedomains/{d.id}" if dc_view else f"storagedomains/{d.id}"
    avail = eng.available(d.id)
    used = max(0, d.capacity - avail)
    out = [
        _open("storage_domain", d.id, href),
        _e("name", d.name),
        _e("available", avail // GIB * GIB),
        _e("used", used // GIB * GIB),
        _e("committed", sum(x.size for x in eng.disks.values() if x.domain == d.id)),
        _e("critical_space_action_blocker", d.critical_space),
        _e("warning_low_space_indicator", d.warning_low_space),
        _e("wipe_after_delete", d.wipe_after_delete),
        _e("discard_after_delete", d.discard_after_delete),
        _e("backup", d.backup),
        _e("external_status", "ok"),
        _e("master", d.master),
        _e("storage_format", "v5"),
    ]
    if d.storage_type != "managed_block_storage":  # StorageDomainMapper has no type for it
        out.append(_e("type", d.type))
    out.append(_storage(eng, d))
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


def disk(eng: LabEngine, k: Disk, owners: list[Vm] | None = None, image_id: str | None = None) -> str:
    """``owners``: the VMs it is attached to when the caller knows (None: look them up)."""
    vms = eng.vms_of_disk(k.id) if owners is None else owners
    out = [
        _open("disk", k.id, f"disks/{k.id}"),
        _e("name", k.alias),
        _e("description", k.description or None),
        _e("alias", k.alias),
        _e("content_type", k.content_type),
        _e("shareable", k.shareable),
        _e("status", k.status),
        _e("storage_type", k.storage_type),
        _e("wipe_after_delete", False),
    ]
    if k.lun is not None:
        lun = eng.luns.get(k.lun)
        out.append(
            "<lun_storage>"
            + _e("type", lun.storage_type if lun else "iscsi")
            + f"<logical_units><logical_unit id={quoteattr(k.lun)}>"
            + (
                _e("address", lun.address) + _e("port", lun.port) + _e("size", lun.size) + _e("target", lun.target)
                if lun
                else ""
            )
            + "</logical_unit></logical_units></lun_storage>"
        )
    else:
        out += [
            _e("actual_size", k.used),
            _e("format", k.format),
            _e("image_id", image_id or k.id),
            _e("provisioned_size", k.size),
            _e("sparse", k.sparse),
            _e("total_size", k.used),
            f"<storage_domains>{_ref('storage_domain', k.domain, 'storagedomains')}</storage_domains>",
        ]
    if vms:
        out.append(collection("vms", (_ref("vm", v.id, "vms") for v in vms)))
    out.append("</disk>")
    return "".join(out)


def attachment(
    eng: LabEngine, vm: Vm | Template, a: Attachment, follow_disk: bool, owners: dict[str, list[Vm]] | None = None
) -> str:
    kind = "vms" if isinstance(vm, Vm) else "templates"
    href = f"{kind}/{vm.id}/diskattachments/{a.disk}"
    d = eng.disks.get(a.disk)
    inner = (
        disk(eng, d, None if owners is None else owners.get(a.disk, []))
        if (follow_disk and d is not None)
        else _ref("disk", a.disk, "disks")
    )
    return (
        _open("disk_attachment", a.disk, href)
        + _e("active", a.active)
        + _e("bootable", a.bootable)
        + _e("interface", a.interface)
        + _e("pass_discard", False)
        + _e("read_only", False)
        + _e("uses_scsi_reservation", False)
        + inner
        + _ref(kind[:-1], vm.id, kind)
        + "</disk_attachment>"
    )


def nic(vm: Vm, n: Nic) -> str:
    mac = n.mac or "56:6f:" + ":".join(n.id[i : i + 2] for i in range(0, 8, 2))
    return (
        _open("nic", n.id, f"vms/{vm.id}/nics/{n.id}")
        + _e("name", n.name)
        + _e("interface", "virtio")
        + _e("linked", n.linked)
        + _e("plugged", n.plugged)
        + f"<mac><address>{escape(mac)}</address></mac>"
        + _ref("vnic_profile", n.profile, "vnicprofiles")
        + _ref("vm", vm.id, "vms")
        + "</nic>"
    )


def vm(
    eng: LabEngine,
    v: Vm,
    follow: set[str],
    *,
    filtered: bool = False,
    status: str | None = None,
    owners: dict[str, list[Vm]] | None = None,
) -> str:
    out = [
        _open("vm", v.id, f"vms/{v.id}"),
        _e("name", v.name),
        _e("description", v.description or None),
        f"<cpu><topology><cores>1</cores><sockets>{v.vcpus}</sockets><threads>1</threads></topology></cpu>",
        f"<high_availability><enabled>{'true' if v.ha else 'false'}</enabled><priority>1</priority>"
        "</high_availability>",
    ]
    if v.lease:
        out.append(f"<lease>{_ref('storage_domain', v.lease, 'storagedomains')}</lease>")
    out += [
        _e("memory", v.memory),
        _e("origin", v.origin),
        _e("stateless", v.stateless),
        _e("status", status or v.status),
        _e("type", "server"),
        _ref("cluster", v.cluster, "clusters"),
    ]
    if not filtered:  # removeRestrictedInfo: a filtered caller does not see where a VM runs
        out.append(_ref("host", v.host, "hosts"))
    out.append(_ref("template", v.template, "templates"))
    if "disk_attachments" in follow or "disk_attachments.disk" in follow:
        deep = "disk_attachments.disk" in follow
        out.append(collection("disk_attachments", (attachment(eng, v, a, deep, owners) for a in v.attachments)))
    else:
        out.append(_link("diskattachments", f"vms/{v.id}/diskattachments"))
    if "tags" in follow:
        out.append(
            collection("tags", (f"<tag id={quoteattr(eng.uid('tag', t))}>{_e('name', t)}</tag>" for t in v.tags))
        )
    else:
        out.append(_link("tags", f"vms/{v.id}/tags"))
    if "nics" in follow:
        out.append(collection("nics", (nic(v, n) for n in v.nics)))
    else:
        out.append(_link("nics", f"vms/{v.id}/nics"))
    out.append(_link("snapshots", f"vms/{v.id}/snapshots"))
    out.append("</vm>")
    return "".join(out)


def template(eng: LabEngine, t: Template, follow: set[str]) -> str:
    out = [
        _open("template", t.id, f"templates/{t.id}"),
        _e("name", t.name),
        _e("status", t.status),
        _ref("cluster", t.cluster, "clusters"),
    ]
    if "disk_attachments" in follow or "disk_attachments.disk" in follow:
        deep = "disk_attachments.disk" in follow
        out.append(collection("disk_attachments", (attachment(eng, t, a, deep) for a in t.attachments)))
    else:
        out.append(_link("diskattachments", f"templates/{t.id}/diskattachments"))
    out.append("</template>")
    return "".join(out)


def unregistered(eng: LabEngine, e: OvfEntity) -> str:
    """A VM or template as ``?unregistered=true`` lists it: from the OVF, as it was when written."""
    if isinstance(e.obj, Vm):
        v = e.obj
        return (
            _open("vm", v.id, f"vms/{v.id}")
            + _e("name", v.name)
            + f"<high_availability><enabled>{'true' if v.ha else 'false'}</enabled><priority>1</priority>"
            + "</high_availability>"
            + _e("memory", v.memory)
            + _e("origin", v.origin)
            + _e("status", e.status)
            + _ref("template", v.template, "templates")
            + "</vm>"
        )
    return _open("template", e.obj.id, f"templates/{e.obj.id}") + _e("name", e.obj.name) + "</template>"


def snapshot(eng: LabEngine, v: Vm, s: Snapshot | None) -> str:
    """One of a VM's snapshots, or (None) its "Active VM" one."""
    if s is None:
        sid = eng.uid("active-snapshot", v.id)
        return (
            _open("snapshot", sid, f"vms/{v.id}/snapshots/{sid}")
            + _e("description", "Active VM")
            + _e("persist_memorystate", False)
            + _e("snapshot_status", "ok")
            + _e("snapshot_type", "active")
            + _ref("vm", v.id, "vms")
            + "</snapshot>"
        )
    return (
        _open("snapshot", s.id, f"vms/{v.id}/snapshots/{s.id}")
        + _e("description", s.description)
        + _e("date", date(s.date))
        + _e("persist_memorystate", False)
        + _e("snapshot_status", s.status)
        + _e("snapshot_type", "regular")
        + _ref("vm", v.id, "vms")
        + _link("disks", f"vms/{v.id}/snapshots/{s.id}/disks")
        + "</snapshot>"
    )


def snapshot_disks(eng: LabEngine, s: Snapshot) -> str:
    return collection(
        "disks", (disk(eng, eng.disks[d], [], image_id=img) for d, img in s.images.items() if d in eng.disks)
    )


def job(j: Job) -> str:
    return (
        _open("job", j.id, f"jobs/{j.id}")
        + _e("description", j.description)
        + _e("auto_cleared", True)
        + _e("external", False)
        + _e("last_updated", date(j.end or j.start))
        + _e("start_time", date(j.start))
        + (_e("end_time", date(j.end)) if j.end else "")
        + _e("status", j.status)
        + _link("steps", f"jobs/{j.id}/steps")
        + "</job>"
    )


def event(ev: Event) -> str:
    """An audit-log entry as restapi ``EventMapper`` writes it: its correlation id, and links to
    the objects it names. (A job, by contrast, shows no correlation id: ``JobMapper``.)"""
    return (
        _open("event", str(ev.index), f"events/{ev.index}")
        + _e("description", ev.description)
        + _e("code", ev.code)
        + _e("correlation_id", ev.correlation_id)
        + _e("custom_id", -1)
        + _e("flood_rate", 30)
        + _e("index", ev.index)
        + _e("origin", "oVirt")
        + _e("severity", ev.severity)
        + _e("time", date(ev.time))
        + _ref("host", ev.host, "hosts")
        + _ref("storage_domain", ev.storage_domain, "storagedomains")
        + _ref("vm", ev.vm, "vms")
        + "</event>"
    )


def action(status: str = "complete", job_id: str | None = None) -> str:
    return "<action>" + (_ref("job", job_id, "jobs") if job_id else "") + _e("status", status) + "</action>"


def fault(reason: str, detail: str) -> str:
    return f"<fault>{_e('detail', detail)}{_e('reason', reason)}</fault>"


def action_fault(reason: str, detail: str) -> str:
    return f"<action><fault>{_e('detail', detail)}{_e('reason', reason)}</fault><status>failed</status></action>"
