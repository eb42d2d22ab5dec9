"""The DR role's mapping file for the domains paired at this engine, as the role runs it.

For each paired data domain, every key the role's tasks read for its type, on both sides (the
``dr_secondary_*`` ones for a failover, the ``dr_primary_*`` ones for a failback), as
``generate_mapping.py`` (ovirt-ansible-collection roles/disaster_recovery/files) reads them from
the engine: storage details, master flag, critical-space blocker, low-space warning, wipe,
discard and backup flags, and for block storage the domain id. The second site's connection
details come from ``dr_storage_mappings`` (the replica is the array's; no engine knows them
before the failover). Clusters map to ``dr_cluster_mappings`` or to the same name; vNIC profiles to
the one of the same network and profile name at the second engine when it is given. CHAP
passwords are written as references to the role's vault file, never as values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge_ovirt import drmap
from ftbridge_ovirt.assemble import Scope, image_disks, lun_disks
from ftbridge_ovirt.client import value
from ftbridge_ovirt.config import OvirtConfig, StorageMapping

FILE_KINDS = frozenset({"nfs", "glusterfs", "posixfs"})


def storage_entry(sd: Any, dc_name: str, pair: StorageMapping, where: str) -> dict[str, Any]:
    """One ``dr_import_storages`` entry; ``where`` names the config entry for errors."""
    kind = str(value(sd.storage.type) if sd.storage is not None else None)
    if kind not in drmap.SIDE_KEYS:
        raise ConfigError(f"{where}: {sd.name} is a {kind} domain, which the DR role does not import")
    master = bool(sd.master)
    e: dict[str, Any] = {
        "dr_domain_type": kind,
        "dr_wipe_after_delete": bool(sd.wipe_after_delete),
        "dr_backup": bool(sd.backup),
        "dr_critical_space_action_blocker": int(sd.critical_space_action_blocker or 0),
        "dr_storage_domain_type": "data",
        "dr_warning_low_space": int(sd.warning_low_space_indicator or 0),
        "dr_primary_name": sd.name,
        "dr_primary_master_domain": master,
        "dr_primary_dc_name": dc_name,
    }
    if kind in FILE_KINDS:
        e["dr_primary_path"] = sd.storage.path
        e["dr_primary_address"] = sd.storage.address
        if kind == "posixfs":
            e["dr_primary_vfs_type"] = sd.storage.vfs_type
    else:
        e["dr_discard_after_delete"] = bool(sd.discard_after_delete)
        e["dr_domain_id"] = sd.id
        if kind == "iscsi":
            units = sd.storage.volume_group.logical_units if sd.storage.volume_group is not None else []
            if not units:
                raise ConfigError(f"{where}: the engine shows no iSCSI logical unit for {sd.name}")
            e["dr_primary_address"] = units[0].address
            e["dr_primary_port"] = int(units[0].port or 3260)
            e["dr_primary_target"] = sorted({u.target for u in units if u.target})
    e["dr_secondary_name"] = pair.secondary_name
    e["dr_secondary_master_domain"] = master if pair.secondary_master is None else pair.secondary_master
    e["dr_secondary_dc_name"] = _need(pair.secondary_dc, where, "secondary_dc", kind)
    if kind in FILE_KINDS:
        e["dr_secondary_path"] = _need(pair.secondary_path, where, "secondary_path", kind)
        e["dr_secondary_address"] = _need(pair.secondary_address, where, "secondary_address", kind)
        if kind == "posixfs":
            e["dr_secondary_vfs_type"] = pair.secondary_vfs_type or e["dr_primary_vfs_type"]
    elif kind == "iscsi":
        e["dr_secondary_address"] = _need(pair.secondary_address, where, "secondary_address", kind)
        e["dr_secondary_port"] = pair.secondary_port or 3260
        if not pair.secondary_target:
            raise ConfigError(
                f"{where}.secondary_target: needed for the iscsi domain {sd.name} (the replica's iSCSI target IQNs)"
            )
        e["dr_secondary_target"] = list(pair.secondary_target)
        if pair.secondary_username:
            e["dr_secondary_username"] = pair.secondary_username
        if pair.secondary_password_var:
            e["dr_secondary_password"] = drmap.vault_ref(pair.secondary_password_var)
    return e


def _need(v: str | None, where: str, key: str, kind: str) -> str:
    if not v:
        raise ConfigError(
            f"{where}.{key}: needed for a {kind} domain (the DR role reads dr_{key}"
            f"{'_name' if key == 'secondary_dc' else ''} to recover to the second site)"
        )
    return v


def build(
    cfg: OvirtConfig,
    endpoint: str,
    sc: Scope,
    vms: Iterable[Any],
    pairs: Mapping[str, StorageMapping],
    mapping_file: drmap.DrMapping | None,
    *,
    secondary: OvirtConfig | None = None,
    secondary_profiles: Mapping[tuple[str, str], tuple[str, str]] | None = None,
    secondary_clusters: Iterable[str] | None = None,
) -> drmap.DrMapping:
    """The mapping file for every paired domain in scope. ``secondary``: the second site's
    endpoint config (its URL, user, CA); ``secondary_profiles``: (network, profile) -> (profile id,
    data center) at the second engine; ``secondary_clusters``: its cluster names, to check the mapping."""
    if cfg.ca_file is None:
        raise ConfigError(
            f"endpoints.{endpoint}.ca_file: the DR role logs in with the engine's CA (dr_sites_primary_ca_file)"
        )
    sites: dict[str, Any] = {
        "dr_sites_primary_url": cfg.url,
        "dr_sites_primary_username": cfg.user,
        "dr_sites_primary_ca_file": str(cfg.ca_file),
    }
    if secondary is not None:
        if secondary.ca_file is None:
            raise ConfigError("the second site's endpoint needs ca_file (dr_sites_secondary_ca_file)")
        sites.update(
            dr_sites_secondary_url=secondary.url,
            dr_sites_secondary_username=secondary.user,
            dr_sites_secondary_ca_file=str(secondary.ca_file),
        )
    elif mapping_file is not None:
        sites.update({k: v for k, v in mapping_file.sites.items() if k.startswith("dr_sites_secondary_")})
    by_name = {sd.name: sd for sd in sc.domains.values()}
    index = {p.primary_name: i for i, p in enumerate(cfg.dr_storage_mappings)}
    storages = []
    for name, pair in sorted(pairs.items()):
        sd = by_name.get(name)
        if sd is None:
            continue
        where = (
            f"endpoints.{endpoint}.dr_storage_mappings[{index[name]}]"
            if name in index
            else f"endpoints.{endpoint}.dr_mapping_file ({name})"
        )
        storages.append(storage_entry(sd, sc.dcs[sc.domain_dc[sd.id]].name, pair, where))
    paired = {by_name[n].id for n in pairs if n in by_name}
    moving = [v for v in vms if any(d.storage_domains[0].id in paired for _, d in image_disks(v))]
    names: dict[str, list[tuple[str, str]]] = {}
    if mapping_file is not None:
        names = {
            k: [
                (str(x["primary_name"]), str(x["secondary_name"]))
                for x in mapping_file.names.get(k, ())
                if x.get("primary_name")
            ]
            for k in drmap.NAME_LISTS
        }
    wanted = {p.primary_name: p.secondary_name for p in cfg.dr_cluster_mappings}
    wanted.update(dict(names.get("dr_cluster_mappings", [])))
    clusters = sorted({sc.clusters[v.cluster.id].name for v in moving if v.cluster.id in sc.clusters})
    known = set(secondary_clusters) if secondary_clusters is not None else None
    pairs_c = []
    for c in clusters:
        target = wanted.get(c, c)
        if known is not None and target not in known:
            raise ConfigError(
                f"endpoints.{endpoint}.dr_cluster_mappings: cluster {c} maps to {target!r}, which the "
                f"second site does not have (it has: {', '.join(sorted(known))})"
            )
        pairs_c.append((c, target))
    names["dr_cluster_mappings"] = pairs_c
    networks = _networks(sc, moving, secondary_profiles, mapping_file)
    luns = _luns(moving, mapping_file)
    return drmap.build(storages, sites=sites, names=names, networks=networks, luns=luns)


def _networks(
    sc: Scope,
    vms: list[Any],
    secondary: Mapping[tuple[str, str], tuple[str, str]] | None,
    mapping_file: drmap.DrMapping | None,
) -> list[dict[str, Any]]:
    used = {n.vnic_profile.id for v in vms for n in (v.nics or ()) if n.vnic_profile is not None}
    out = []
    for net in sc.networks.values():
        dc = sc.dcs[net.data_center.id].name if net.data_center is not None and net.data_center.id in sc.dcs else ""
        for p in net.vnic_profiles or ():
            if p.id not in used:
                continue
            found = (secondary or {}).get((net.name, p.name))
            if found is None and mapping_file is not None:
                found = next(
                    (
                        (str(x["secondary_profile_id"]), str(x.get("secondary_network_dc") or ""))
                        for x in mapping_file.networks or ()
                        if x.get("primary_profile_id") == p.id
                    ),
                    None,
                )
            if found is None:
                continue  # unknown at the second site: the engine keeps a profile of the same names
            entry = {
                "primary_network_name": net.name,
                "primary_network_dc": dc,
                "primary_profile_name": p.name,
                "primary_profile_id": p.id,
                "secondary_network_name": net.name,
                "secondary_profile_name": p.name,
                "secondary_profile_id": found[0],
            }
            if found[1]:
                entry["secondary_network_dc"] = found[1]
            out.append(entry)
    return out


def _luns(vms: list[Any], mapping_file: drmap.DrMapping | None) -> list[dict[str, Any]]:
    """The file's LUN pairs for the direct LUNs of the VMs that move (ftbridge knows no replica LUN)."""
    if mapping_file is None or not mapping_file.luns:
        return []
    used = {d.lun_storage.logical_units[0].id for v in vms for _, d in lun_disks(v)}
    return [dict(x) for x in mapping_file.luns if x.get("primary_logical_unit_id") in used]
