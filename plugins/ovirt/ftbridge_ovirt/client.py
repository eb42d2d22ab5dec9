"""The one module that imports ovirtsdk4, and the one place its errors become ftbridge's.

Everything the driver asks of the engine goes through :class:`Engine`, a thin layer over the
SDK's services that (a) builds the SDK's request types, (b) passes the correlation id every
changing call carries, and (c) turns every SDK, pycurl or parse error into an
:class:`~ftbridge.errors.FtbridgeError` in :func:`translate`, chained with ``from``. It returns
the SDK's own objects; the driver reads their attributes and never imports the SDK.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ftbridge.drivers import require_sdk
from ftbridge.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    FtbridgeError,
    NotFound,
    OperationTimeout,
    UnsupportedOperation,
)
from ftbridge.secrets import redact, remember

if TYPE_CHECKING:
    from ftbridge_ovirt.config import OvirtConfig

PACKAGE = "ovirt-engine-sdk-python"
INSTALL_HINT = (
    "apt-get install gcc libxml2-dev python3-dev && pip install 'ovirt-engine-sdk-python>=4.6' "
    "(or: pip install ftbridge-ovirt)"
)

#: libcurl error numbers that mean "the certificate was not trusted" (60, 51, 58, 77, 83, 90, 91)
_CURL_TLS_TRUST = frozenset({51, 58, 60, 77, 83, 90, 91})
_CURL_TLS_OTHER = frozenset({35, 53, 54, 59, 64, 66, 80})
_CURL_TIMEOUT = 28


def sdk() -> Any:
    """ovirtsdk4, or one DriverLoadError line naming the install command."""
    mod = require_sdk("ovirtsdk4", package=PACKAGE, driver="ovirt", hint=INSTALL_HINT)
    require_sdk("ovirtsdk4.types", package=PACKAGE, driver="ovirt", hint=INSTALL_HINT)
    return mod


def value(enum_or_none: Any) -> str | None:
    """The wire text of an SDK enum (``VmStatus.UP`` -> ``"up"``); None stays None."""
    if enum_or_none is None:
        return None
    return str(getattr(enum_or_none, "value", enum_or_none))


def translate(exc: BaseException, *, endpoint: str, doing: str) -> FtbridgeError:
    """The ftbridge error for an SDK/pycurl failure, by type and HTTP code, never by wording."""
    if isinstance(exc, FtbridgeError):
        return exc
    osdk = sdk()
    code = getattr(exc, "code", None)
    detail = _detail(exc)
    msg = f"{doing}: {detail}" if detail else doing
    curl_no = _curl_errno(exc)
    if curl_no in _CURL_TLS_TRUST:
        return AuthenticationError(
            f"{doing}: the engine's TLS certificate is not trusted ({detail})",
            endpoint=endpoint,
            hint="set ca_file to the engine's CA (https://ENGINE/ovirt-engine/services/pki-resource"
            "?resource=ca-certificate&format=X509-PEM-CA), or insecure = true to skip the check",
        )
    if curl_no in _CURL_TLS_OTHER:
        return BackendUnavailable(
            f"{doing}: TLS handshake failed ({detail})",
            endpoint=endpoint,
            hint="is the URL's scheme right (https vs http)?",
        )
    if isinstance(exc, osdk.AuthError) or code in (401, 403):
        return AuthenticationError(msg, endpoint=endpoint, hint="check user and password (user@profile)")
    if isinstance(exc, osdk.NotFoundError) or code == 404:
        return NotFound(msg, endpoint=endpoint)
    if isinstance(exc, osdk.TimeoutError) or curl_no == _CURL_TIMEOUT:
        return OperationTimeout(msg, endpoint=endpoint, hint="raise the endpoint's timeout if the engine is slow")
    if isinstance(exc, osdk.ConnectionError) or (curl_no is not None and code is None):
        return BackendUnavailable(msg, endpoint=endpoint, hint="is the engine up and the URL right?")
    if code == 409:
        return Conflict(msg, endpoint=endpoint)
    if isinstance(code, int) and code >= 500:
        return BackendUnavailable(msg, endpoint=endpoint)
    if isinstance(code, int) and code == 400:
        return BackendError(msg, endpoint=endpoint)
    if isinstance(code, int):
        return BackendError(msg, endpoint=endpoint)
    # no HTTP code: transport trouble the SDK reports as a bare Error (reset, unreadable reply)
    if isinstance(exc, osdk.Error):
        return BackendUnavailable(msg, endpoint=endpoint)
    return BackendError(msg, endpoint=endpoint)


def _detail(exc: BaseException) -> str:
    fault = getattr(exc, "fault", None)
    if fault is not None and (fault.reason or fault.detail):
        text = " ".join(x for x in (fault.reason, fault.detail) if x)
        code = getattr(exc, "code", None)
        text = f"{text} (HTTP {code})" if code else text
    else:
        text = str(exc)
    return redact(text.strip())


def _curl_errno(exc: BaseException) -> int | None:
    """libcurl's error number, from a pycurl.error the SDK chained or wrapped."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__module__ == "pycurl" and cur.args and isinstance(cur.args[0], int):
            return int(cur.args[0])
        cur = cur.__cause__ or cur.__context__
    # the SDK's multi-handle path raises Error("Failed to read response: [(curl, errno, text)]")
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str) and args[0].startswith("Failed to read response: [("):
        rest = args[0].split(",", 2)
        if len(rest) >= 2 and rest[1].strip().isdigit():
            return int(rest[1].strip())
    return None


class Engine:
    """One authenticated connection to an engine. No I/O until :meth:`connect`."""

    def __init__(self, cfg: OvirtConfig, *, endpoint: str) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self._conn: Any = None
        self._sdk: Any = None
        self.t: Any = None  # ovirtsdk4.types, for the driver's reading of enums if needed

    # lifecycle ---------------------------------------------------------------------------
    def connect(self, password: str) -> None:
        self._sdk = sdk()
        self.t = self._sdk.types
        cfg = self.cfg
        if cfg.ca_file is not None and not cfg.ca_file.is_file():
            raise ConfigError(
                f"endpoints.{self.endpoint}.ca_file: {cfg.ca_file} does not exist", endpoint=self.endpoint
            )
        with self.call("connecting"):
            self._conn = self._sdk.Connection(
                url=cfg.url,
                username=cfg.user,
                password=password,
                ca_file=str(cfg.ca_file) if cfg.ca_file else None,
                insecure=cfg.insecure,
                timeout=max(1, math.ceil(cfg.timeout)),
                compress=True,
                # a user without admin roles must ask for filtered results, or every query fails
                headers={"Filter": "true"} if cfg.filter else None,
            )
        try:
            with self.call("logging in"):
                token = self._conn.authenticate()
            if token:
                remember(str(token))
        except BaseException:
            self.close(logout=False)
            raise

    def close(self, *, logout: bool = True) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close(logout=logout)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @contextlib.contextmanager
    def call(self, doing: str) -> Iterator[None]:
        """Run SDK calls; anything they raise leaves as one ftbridge error."""
        try:
            yield
        except (FtbridgeError, AttributeError, TypeError, KeyError, NameError):
            raise  # ours, or a bug: never disguised as a backend failure
        except Exception as exc:  # the SDK raises Error subclasses, pycurl.error, ValueError on bad XML
            raise translate(exc, endpoint=self.endpoint, doing=doing) from exc

    @property
    def _system(self) -> Any:
        if self._conn is None:
            raise BackendUnavailable("not connected: call open() first", endpoint=self.endpoint)
        return self._conn.system_service()

    # reads -------------------------------------------------------------------------------
    def api(self) -> Any:
        with self.call("reading the API root"):
            return self._system.get()

    def data_centers(self) -> list[Any]:
        """Data centers with their attached storage domains (status as each DC sees it), networks
        and vNIC profiles inlined."""
        with self.call("listing data centers"):
            return list(self._system.data_centers_service().list(follow="storage_domains,networks.vnic_profiles"))

    def clusters(self) -> list[Any]:
        with self.call("listing clusters"):
            return list(self._system.clusters_service().list())

    def hosts(self) -> list[Any]:
        with self.call("listing hosts"):
            return list(self._system.hosts_service().list())

    def vms(self, search: str | None = None) -> list[Any]:
        """VMs with disk attachments, their disks, tags and NICs inlined: one call for any count."""
        with self.call("listing VMs"):
            return list(self._system.vms_service().list(follow="disk_attachments.disk,tags,nics", search=search))

    def templates(self) -> list[Any]:
        with self.call("listing templates"):
            return list(self._system.templates_service().list(follow="disk_attachments.disk"))

    def host(self, host_id: str) -> Any:
        with self.call(f"reading host {host_id}"):
            return self._system.hosts_service().host_service(host_id).get()

    def snapshots(self, vm_id: str) -> list[Any]:
        with self.call(f"listing snapshots of VM {vm_id}"):
            return list(self._system.vms_service().vm_service(vm_id).snapshots_service().list())

    def vm(self, vm_id: str, *, follow: str | None = "disk_attachments.disk,tags,nics") -> Any:
        with self.call(f"reading VM {vm_id}"):
            return self._system.vms_service().vm_service(vm_id).get(follow=follow)

    def disks(self, search: str) -> list[Any]:
        with self.call("listing disks"):
            return list(self._system.disks_service().list(search=search))

    def disk(self, disk_id: str) -> Any:
        with self.call(f"reading disk {disk_id}"):
            return self._system.disks_service().disk_service(disk_id).get()

    def jobs(self, correlation_id: str) -> list[Any]:
        """The jobs of one correlation id. The engine searches jobs by the exact value of
        ``correlation_id`` only (searchbackend ``JobConditionFieldAutoCompleter``) and shows no
        correlation id on a job (restapi types ``JobMapper``): this is the one way to find them."""
        with self.call(f"listing jobs of {correlation_id}"):
            return list(self._system.jobs_service().list(search=f"correlation_id={correlation_id}"))

    def events(self, search: str, *, limit: int) -> list[Any]:
        """Audit-log events matching ``search``, the newest first (the engine's order when the
        search has no ``sortby``: ``audit_log_id DESC``), at most ``limit`` of them."""
        with self.call("listing events"):
            return list(self._system.events_service().list(search=search, max=limit))

    def nics(self, vm_id: str) -> list[Any]:
        with self.call(f"listing NICs of VM {vm_id}"):
            return list(self._system.vms_service().vm_service(vm_id).nics_service().list())

    def storage_domains(self, search: str | None = None) -> list[Any]:
        with self.call("listing storage domains"):
            return list(self._system.storage_domains_service().list(search=search))

    def unregistered_vms(self, sd_id: str) -> list[Any]:
        """VMs an imported (replicated) domain carries that this engine has not registered."""
        with self.call(f"listing unregistered VMs of storage domain {sd_id}"):
            return list(
                self._system.storage_domains_service()
                .storage_domain_service(sd_id)
                .vms_service()
                .list(unregistered=True)
            )

    def unregistered_templates(self, sd_id: str) -> list[Any]:
        with self.call(f"listing unregistered templates of storage domain {sd_id}"):
            return list(
                self._system.storage_domains_service()
                .storage_domain_service(sd_id)
                .templates_service()
                .list(unregistered=True)
            )

    # changes (each carries a correlation id the engine tags its jobs with) ----------------
    def _q(self, corr: str) -> dict[str, str]:
        """The query of a change: its correlation id. Every change passes here, so here a
        filtered session (``filter = true``) is refused before anything changes: the engine lets
        it follow no job (restapi ``BackendJobsResource.list`` runs ``GetAllJobs``, an admin query,
        which bll ``QueriesCommandBase.validatePermissions`` refuses to any filtered caller), and a
        change ftbridge cannot follow it must not start."""
        if self.cfg.filter:
            raise UnsupportedOperation(
                f"endpoints.{self.endpoint}.filter = true: the engine shows a filtered session no jobs "
                "(GetAllJobs is an admin query), so ftbridge could not follow this change; make changes "
                "with an account that runs unfiltered and keep filter = true for inventory and audit",
                endpoint=self.endpoint,
            )
        return {"correlation_id": corr}

    def move_disk(self, disk_id: str, sd_id: str, corr: str) -> None:
        with self.call(f"moving disk {disk_id}"):
            self._system.disks_service().disk_service(disk_id).move(
                storage_domain=self.t.StorageDomain(id=sd_id), query=self._q(corr)
            )

    def copy_disk(self, disk_id: str, sd_id: str, alias: str, corr: str) -> None:
        with self.call(f"copying disk {disk_id}"):
            self._system.disks_service().disk_service(disk_id).copy(
                storage_domain=self.t.StorageDomain(id=sd_id), disk=self.t.Disk(alias=alias), query=self._q(corr)
            )

    def remove_disk(self, disk_id: str, corr: str) -> None:
        with self.call(f"removing disk {disk_id}"):
            self._system.disks_service().disk_service(disk_id).remove(query=self._q(corr))

    def update_disk_alias(self, disk_id: str, alias: str, corr: str) -> None:
        with self.call(f"renaming disk {disk_id}"):
            self._system.disks_service().disk_service(disk_id).update(self.t.Disk(alias=alias), query=self._q(corr))

    def add_vm(
        self,
        *,
        name: str,
        cluster_id: str,
        description: str,
        corr: str,
        memory: int | None = None,
        stateless: bool = False,
    ) -> Any:
        t = self.t
        with self.call(f"creating VM {name}"):
            return self._system.vms_service().add(
                t.Vm(
                    name=name,
                    description=description,
                    cluster=t.Cluster(id=cluster_id),
                    template=t.Template(name="Blank"),
                    stateless=stateless,
                    memory=memory,
                ),
                query=self._q(corr),
            )

    def remove_vm(self, vm_id: str, corr: str, *, detach_only: bool = True) -> None:
        with self.call(f"removing VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).remove(detach_only=detach_only, query=self._q(corr))

    def start_vm(self, vm_id: str, corr: str, *, host_id: str | None = None) -> None:
        t = self.t
        run = t.Vm(placement_policy=t.VmPlacementPolicy(hosts=[t.Host(id=host_id)])) if host_id else None
        with self.call(f"starting VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).start(vm=run, query=self._q(corr))

    def stop_vm(self, vm_id: str, corr: str, *, reason: str = "ftbridge") -> None:
        with self.call(f"stopping VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).stop(force=True, reason=reason, query=self._q(corr))

    def fence(self, host_id: str, kind: str, corr: str) -> None:
        """``manual``: 'Confirm host has been rebooted' (the engine takes the caller's word and
        releases the host's VMs); ``stop``/``restart``: through the host's power management."""
        with self.call(f"fencing host {host_id} ({kind})"):
            self._system.hosts_service().host_service(host_id).fence(fence_type=kind, query=self._q(corr))

    def add_snapshot(self, vm_id: str, description: str, disk_ids: list[str], corr: str) -> Any:
        t = self.t
        with self.call(f"taking a snapshot of VM {vm_id}"):
            return (
                self._system.vms_service()
                .vm_service(vm_id)
                .snapshots_service()
                .add(
                    t.Snapshot(
                        description=description,
                        persist_memorystate=False,
                        disk_attachments=[t.DiskAttachment(disk=t.Disk(id=d)) for d in disk_ids],
                    ),
                    query=self._q(corr),
                )
            )

    def remove_snapshot(self, vm_id: str, snap_id: str, corr: str) -> None:
        with self.call(f"removing snapshot {snap_id} of VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).snapshots_service().snapshot_service(snap_id).remove(
                query=self._q(corr)
            )

    def clone_vm(
        self,
        *,
        name: str,
        description: str,
        cluster_id: str,
        snapshot_id: str,
        disks: dict[str, tuple[str, str]],
        corr: str,
    ) -> Any:
        """A new VM whose disks are copies of the snapshot's (disk id -> (domain id, alias))."""
        t = self.t
        with self.call(f"cloning VM {name} from snapshot {snapshot_id}"):
            return self._system.vms_service().add(
                t.Vm(
                    name=name,
                    description=description,
                    cluster=t.Cluster(id=cluster_id),
                    snapshots=[t.Snapshot(id=snapshot_id)],
                    disk_attachments=[
                        t.DiskAttachment(disk=t.Disk(id=d, alias=alias, storage_domains=[t.StorageDomain(id=sd)]))
                        for d, (sd, alias) in sorted(disks.items())
                    ],
                ),
                query=self._q(corr),
            )

    def set_lease(self, vm_id: str, sd_id: str | None, corr: str) -> None:
        t = self.t
        lease = t.StorageDomainLease(storage_domain=t.StorageDomain(id=sd_id)) if sd_id else t.StorageDomainLease()
        with self.call(f"setting the lease of VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).update(t.Vm(lease=lease), query=self._q(corr))

    def import_domain(
        self,
        *,
        name: str,
        storage_type: str,
        host_id: str,
        sd_id: str | None = None,
        address: str | None = None,
        path: str | None = None,
        vfs_type: str | None = None,
        corr: str,
    ) -> Any:
        """Bring an existing (replicated) domain into this engine: the DR role's add/import."""
        t = self.t
        with self.call(f"importing storage domain {name}"):
            return self._system.storage_domains_service().add(
                t.StorageDomain(
                    id=sd_id,
                    name=name,
                    type=t.StorageDomainType.DATA,
                    import_=True,
                    host=t.Host(id=host_id),
                    storage=t.HostStorage(
                        type=t.StorageType(storage_type), address=address, path=path, vfs_type=vfs_type
                    ),
                ),
                query=self._q(corr),
            )

    def deactivate_domain(self, dc_id: str, sd_id: str, corr: str) -> None:
        with self.call(f"deactivating storage domain {sd_id}"):
            self._system.data_centers_service().data_center_service(
                dc_id
            ).storage_domains_service().storage_domain_service(sd_id).deactivate(query=self._q(corr))

    def detach_domain(self, dc_id: str, sd_id: str, corr: str) -> None:
        with self.call(f"detaching storage domain {sd_id}"):
            self._system.data_centers_service().data_center_service(
                dc_id
            ).storage_domains_service().storage_domain_service(sd_id).remove(query=self._q(corr))

    def forget_domain(self, sd_id: str, corr: str) -> None:
        """Remove a domain from the engine without formatting it (the role's ``destroy``)."""
        with self.call(f"removing storage domain {sd_id} from the engine"):
            self._system.storage_domains_service().storage_domain_service(sd_id).remove(
                destroy=True, query=self._q(corr)
            )

    def attach_domain(self, dc_id: str, sd_id: str, corr: str) -> None:
        with self.call(f"attaching storage domain {sd_id} to data center {dc_id}"):
            self._system.data_centers_service().data_center_service(dc_id).storage_domains_service().add(
                self.t.StorageDomain(id=sd_id), query=self._q(corr)
            )

    def registration(
        self, *, names: dict[str, dict[str, str]], profiles: dict[tuple[str, str], str], luns: dict[str, dict[str, Any]]
    ) -> Any:
        """``registration_configuration``: clusters, affinity groups and labels, roles and AAA
        domains by name (``names[section]``: source -> target), vNIC profiles (network, profile
        name) to a profile id, direct LUNs to the replica's logical unit (a dict of its details)."""
        t = self.t
        pairs = {
            "cluster_mappings": (t.RegistrationClusterMapping, t.Cluster, "dr_cluster_mappings"),
            "affinity_group_mappings": (
                t.RegistrationAffinityGroupMapping,
                t.AffinityGroup,
                "dr_affinity_group_mappings",
            ),
            "affinity_label_mappings": (
                t.RegistrationAffinityLabelMapping,
                t.AffinityLabel,
                "dr_affinity_label_mappings",
            ),
            "role_mappings": (t.RegistrationRoleMapping, t.Role, "dr_role_mappings"),
            "domain_mappings": (t.RegistrationDomainMapping, t.Domain, "dr_domain_mappings"),
        }
        kw: dict[str, Any] = {
            arg: [mapping(from_=kind(name=a), to=kind(name=b)) for a, b in sorted(names.get(section, {}).items())]
            for arg, (mapping, kind, section) in pairs.items()
        }
        kw["vnic_profile_mappings"] = [
            t.RegistrationVnicProfileMapping(
                from_=t.VnicProfile(name=p, network=t.Network(name=n)), to=t.VnicProfile(id=to)
            )
            for (n, p), to in sorted(profiles.items())
        ]
        kw["lun_mappings"] = [
            t.RegistrationLunMapping(
                from_=t.Disk(lun_storage=t.HostStorage(logical_units=[t.LogicalUnit(id=src)])),
                to=t.Disk(
                    lun_storage=t.HostStorage(
                        type=t.StorageType(dst["storage_type"]),
                        logical_units=[
                            t.LogicalUnit(
                                id=dst["id"],
                                address=dst.get("address"),
                                port=dst.get("port"),
                                target=dst.get("target"),
                                portal=dst.get("portal"),
                            )
                        ],
                    )
                ),
            )
            for src, dst in sorted(luns.items())
        ]
        return t.RegistrationConfiguration(**kw)

    def iscsi_login(
        self,
        host_id: str,
        *,
        address: str,
        port: int,
        target: str,
        username: str | None,
        password: str | None,
        corr: str,
    ) -> None:
        with self.call(f"logging host {host_id} in to iSCSI target {target}"):
            self._system.hosts_service().host_service(host_id).iscsi_login(
                iscsi=self.t.IscsiDetails(
                    address=address, port=port, target=target, username=username or None, password=password or None
                ),
                query=self._q(corr),
            )

    def register_vm(
        self,
        sd_id: str,
        vm_id: str,
        corr: str,
        *,
        registration: Any,
        cluster_id: str | None = None,
        partial: bool = True,
    ) -> None:
        with self.call(f"registering VM {vm_id} from storage domain {sd_id}"):
            self._system.storage_domains_service().storage_domain_service(sd_id).vms_service().vm_service(
                vm_id
            ).register(
                cluster=self.t.Cluster(id=cluster_id) if cluster_id else None,
                allow_partial_import=partial,
                reassign_bad_macs=True,
                registration_configuration=registration,
                query=self._q(corr),
            )

    def register_template(
        self, sd_id: str, tid: str, corr: str, *, registration: Any, cluster_id: str | None = None, partial: bool = True
    ) -> None:
        with self.call(f"registering template {tid} from storage domain {sd_id}"):
            self._system.storage_domains_service().storage_domain_service(sd_id).templates_service().template_service(
                tid
            ).register(
                cluster=self.t.Cluster(id=cluster_id) if cluster_id else None,
                allow_partial_import=partial,
                registration_configuration=registration,
                query=self._q(corr),
            )

    def set_cluster(self, vm_id: str, cluster_id: str, corr: str) -> None:
        t = self.t
        with self.call(f"moving VM {vm_id} to cluster {cluster_id}"):
            self._system.vms_service().vm_service(vm_id).update(
                t.Vm(cluster=t.Cluster(id=cluster_id)), query=self._q(corr)
            )

    def attach_disk(self, vm_id: str, disk_id: str, *, interface: str, bootable: bool, corr: str) -> None:
        t = self.t
        with self.call(f"attaching disk {disk_id} to VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).disk_attachments_service().add(
                t.DiskAttachment(
                    disk=t.Disk(id=disk_id), interface=t.DiskInterface(interface), bootable=bootable, active=True
                ),
                query=self._q(corr),
            )

    def detach_disk(self, vm_id: str, disk_id: str, corr: str) -> None:
        with self.call(f"detaching disk {disk_id} from VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).disk_attachments_service().attachment_service(disk_id).remove(
                detach_only=True, query=self._q(corr)
            )

    def update_nic(self, vm_id: str, nic_id: str, *, plugged: bool, corr: str) -> None:
        t = self.t
        with self.call(f"updating NIC {nic_id} of VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).nics_service().nic_service(nic_id).update(
                t.Nic(plugged=plugged, linked=plugged), query=self._q(corr)
            )

    def set_stateless(self, vm_id: str, stateless: bool, corr: str) -> None:
        with self.call(f"updating VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).update(self.t.Vm(stateless=stateless), query=self._q(corr))

    def add_nic(self, vm_id: str, *, name: str, profile_id: str | None, plugged: bool, corr: str) -> None:
        t = self.t
        with self.call(f"adding NIC {name} to VM {vm_id}"):
            self._system.vms_service().vm_service(vm_id).nics_service().add(
                t.Nic(
                    name=name,
                    plugged=plugged,
                    linked=plugged,
                    vnic_profile=t.VnicProfile(id=profile_id) if profile_id else None,
                ),
                query=self._q(corr),
            )
