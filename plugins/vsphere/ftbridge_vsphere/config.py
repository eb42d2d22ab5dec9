"""The ``[endpoints.NAME]`` table of a vCenter endpoint.

Secrets are references (``{ env = "VAR" }`` or ``{ file = "/path" }``), never literals; TLS is
verified by default, against ``ca_file`` when given (a lab or a private CA), else the system
store. ``verify_tls = false`` is allowed but the driver warns on every open.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ftbridge.configtypes import ConfigPath, Secret
from ftbridge.drivers import DriverConfig
from ftbridge.secrets import refuse_userinfo


class VsphereConfig(DriverConfig):
    host: str = Field(description="vCenter host name or address")
    port: int = Field(default=443, ge=1, le=65535)
    user: str = Field(description="user name, e.g. administrator@vsphere.local")
    password: Secret = Field(description='{ env = "VAR" } or { file = "/path" }')
    verify_tls: bool = Field(default=True, description="verify the server certificate (default true)")
    ca_file: ConfigPath | None = Field(default=None, description="PEM file of the CA (or certificate) to trust")
    datacenter: str | None = Field(default=None, description="only this datacenter (inventory path or name)")
    cluster: str | None = Field(default=None, description="only hosts of this cluster, and their VMs and datastores")
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for a connection or a reply")

    @field_validator("host", mode="before")
    @classmethod
    def _no_credentials(cls, v: Any) -> Any:
        return refuse_userinfo(v)
