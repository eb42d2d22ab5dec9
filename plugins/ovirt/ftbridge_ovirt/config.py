"""``[endpoints.NAME]`` for an oVirt engine: validated here so mistakes name their key.

The URL must be the API root (``.../ovirt-engine/api``): the SDK derives the SSO endpoints
from it and, given anything else, fails later with a content-type error that hides the cause.
TLS is verified against ``ca_file`` (or the system store); ``insecure = true`` turns that off
and is warned about on every open.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftbridge.configtypes import ConfigPath, Duration, Secret
from ftbridge.drivers import DriverConfig
from ftbridge.secrets import refuse_userinfo

log = logging.getLogger(__name__)

API_PATH = "/ovirt-engine/api"


class StorageMapping(BaseModel):
    """One pair of array-replicated storage domains, as the oVirt DR role pairs them.

    ``primary_name`` is the domain at this engine; ``secondary_name`` its replica at the
    second site. With array replication the replica keeps the domain's UUID, so
    ``secondary_id`` defaults to the primary's id when the driver reports the secondary.
    The ``secondary_*`` connection keys say where the second site's hosts find the replica (the
    DR role's ``dr_secondary_*`` keys); the export needs them for the domain's storage type.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_name: str
    secondary_name: str
    primary_dc: str | None = None
    secondary_dc: str | None = None
    secondary_id: str | None = None
    secondary_address: str | None = Field(default=None, description="NFS/Gluster/POSIX server, iSCSI portal")
    secondary_path: str | None = Field(default=None, description="NFS/Gluster/POSIX export")
    secondary_vfs_type: str | None = Field(default=None, description="POSIX file system type")
    secondary_port: int | None = Field(default=None, ge=1, le=65535, description="iSCSI port")
    secondary_target: tuple[str, ...] = Field(default=(), description="iSCSI target IQNs")
    secondary_username: str | None = Field(default=None, description="iSCSI CHAP user")
    secondary_password_var: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the role's vault variable holding the CHAP password (never the password)",
    )
    secondary_master: bool | None = Field(default=None, description="master at the second site (default: as here)")


class NamePair(BaseModel):
    """``{primary_name, secondary_name}``, as the DR role's name mappings are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_name: str
    secondary_name: str


class OvirtConfig(DriverConfig):
    """One oVirt engine (4.4/4.5, RHV 4.4, OLVM)."""

    url: str = Field(description="engine API root, https://engine.example.com/ovirt-engine/api")
    user: str = Field(default="admin@internal", description="user@profile")
    password: Secret = Field(description='{ env = "VAR" } or { file = "/path" }')
    ca_file: ConfigPath | None = Field(default=None, description="PEM file of the engine's CA")
    insecure: bool = Field(default=False, description="skip TLS verification (warned about)")
    timeout: Duration = Field(default=60.0, gt=0, description="per HTTP request")
    data_center: str | None = Field(default=None, description="only this data center (name, glob)")
    cluster: str | None = Field(default=None, description="only hosts and VMs of this cluster (name, glob)")
    copy_interface: Literal["virtio_scsi", "virtio", "sata", "ide"] = Field(
        default="virtio_scsi", description="interface for copy disks attached by promote when unknown"
    )
    dr_storage_mappings: tuple[StorageMapping, ...] = Field(
        default=(), description="ovirt-dr pairs: [{ primary_name, secondary_name }], added to dr_mapping_file's"
    )
    dr_mapping_file: ConfigPath | None = Field(
        default=None, description="the oVirt DR role's mapping file (YAML): its dr_import_storages pair domains"
    )
    dr_secondary_endpoint: str | None = Field(
        default=None, description="the endpoint (or site name) that holds the replicas"
    )
    dr_site: Literal["primary", "secondary"] = Field(
        default="primary",
        description="which side of dr_mapping_file this engine is: 'secondary' makes it the "
        "DR target that imports the replicas on failover",
    )
    dr_cluster_mappings: tuple[NamePair, ...] = Field(
        default=(), description="ovirt-dr: [{ primary_name, secondary_name }] clusters (default: same name)"
    )
    dr_vault: dict[str, Secret] = Field(
        default_factory=dict,
        description="ovirt-dr target: the mapping file's vault variables ftbridge needs "
        '(iSCSI CHAP passwords), as { var = { env = "VAR" } }',
    )
    filter: bool = Field(
        default=False, description="send 'Filter: true': required for a user without the engine's admin roles"
    )

    @field_validator("url", mode="before")
    @classmethod
    def _no_credentials(cls, v: Any) -> Any:
        return refuse_userinfo(v)

    @field_validator("url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http(s) URL ending in {API_PATH}, such as https://engine.example.com{API_PATH}"
            )
        path = parts.path.rstrip("/")
        if path != API_PATH:
            raise ValueError(
                f"the path must be {API_PATH} (got {parts.path or '/'!r}), "
                f"such as {parts.scheme}://{parts.netloc}{API_PATH}"
            )
        return f"{parts.scheme}://{parts.netloc}{API_PATH}"

    @model_validator(mode="after")
    def _tls(self) -> OvirtConfig:
        if self.insecure and self.ca_file is not None:
            raise ValueError("give ca_file or insecure = true, not both")
        if self.dr_site == "secondary" and self.dr_mapping_file is None:
            raise ValueError("dr_site = 'secondary' needs dr_mapping_file (what to import on failover)")
        return self

    @property
    def https(self) -> bool:
        return self.url.startswith("https:")

    def warn_transport(self, endpoint: str) -> None:
        """Say, once per open, when credentials or data travel unprotected."""
        host = urlsplit(self.url).hostname or ""
        if self.https and self.insecure:
            log.warning("%s: TLS verification is off (insecure = true): the engine's identity is not checked", endpoint)
        elif not self.https and not _loopback(host):
            log.warning("%s: plain http to %s: the password travels unencrypted", endpoint, host)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
