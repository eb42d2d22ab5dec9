"""The ``[endpoints.NAME]`` table of a Proxmox VE endpoint.

One cluster per endpoint: any node's API answers for the whole cluster. Credentials are an
API token (preferred: no ticket to renew, revocable on its own) or a password, both as
:class:`~ftbridge.secrets.Secret` references, never literal values.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ftbridge.configtypes import ConfigPath, Duration, Secret
from ftbridge.drivers import DriverConfig
from ftbridge.secrets import refuse_userinfo

#: pve-access-control ``PVE/Auth/Plugin.pm``: ``user_regex`` ``[^\s:/]+`` (greedy, so the realm is
#: what follows the last '@'), ``realm_regex``; ``verify_username``: 3 to 64 characters
_USER = re.compile(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$")
_TOKEN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
_SCHEDULE = re.compile(r"^[\w\s\-*/:,.~\[\]]{1,128}$")


class ProxmoxConfig(DriverConfig):
    """Connection, credentials and the knobs the driver's operations use."""

    host: str | None = Field(default=None, description="a node's host name or address")
    url: str | None = Field(default=None, description="https://host[:port] (instead of host/port)")
    port: int = Field(default=8006, ge=1, le=65535, description="API port (pveproxy)")
    user: str = Field(description="user@realm, e.g. ftbridge@pve or root@pam")
    token_name: str | None = Field(default=None, description="API token id (the part after '!')")
    token: Secret | None = Field(default=None, description="API token secret")
    password: Secret | None = Field(default=None, description="password, when no token is used")
    verify_tls: bool = Field(default=True, description="verify the server certificate (default on)")
    ca_file: ConfigPath | None = Field(default=None, description="CA bundle that signed the API certificate")
    timeout: Duration = Field(default=30.0, gt=0, description="per-request timeout")
    concurrency: int = Field(default=8, ge=1, le=64, description="parallel API reads during inventory")
    read_retries: int = Field(default=2, ge=0, le=10, description="retries of idempotent reads on 5xx")
    bwlimit: int | None = Field(default=None, ge=0, description="KiB/s limit for disk moves and clones")
    replication_schedule: str = Field(default="*/15", description="pvesr schedule of jobs ftbridge creates")
    ha_on_protect: bool = Field(default=True, description="put protected VMs under PVE HA")

    @field_validator("host", "url", mode="before")
    @classmethod
    def _no_credentials(cls, v: Any) -> Any:
        return refuse_userinfo(v)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _USER.match(v) or not 3 <= len(v) <= 64:
            raise ValueError(
                "expected user@realm, 3 to 64 characters, e.g. ftbridge@pve or "
                "example.user@google.com@myrealm1 (the token id goes in token_name)"
            )
        return v

    @field_validator("token_name")
    @classmethod
    def _token_name(cls, v: str | None) -> str | None:
        if v is not None and not _TOKEN_NAME.match(v):
            raise ValueError("expected the token id only, e.g. ftbridge (not user@realm!ftbridge)")
        return v

    @field_validator("replication_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if not _SCHEDULE.match(v):
            raise ValueError("expected a PVE calendar event such as */15 or 'mon..fri 02:00'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("expected https://host[:port] (the PVE API is served over HTTPS only)")
        if parts.path not in ("", "/", "/api2/json", "/api2/json/"):
            raise ValueError("give the server only: https://host[:port]")
        return v

    @model_validator(mode="after")
    def _one_of_each(self) -> ProxmoxConfig:
        if (self.host is None) == (self.url is None):
            raise ValueError("give exactly one of host or url")
        if (self.token_name is None) != (self.token is None):
            raise ValueError("token_name and token go together")
        if (self.token is None) == (self.password is None):
            raise ValueError("give exactly one credential: token_name + token, or password")
        if not self.verify_tls and self.ca_file is not None:
            raise ValueError("ca_file is given but verify_tls = false: drop one of them")
        return self

    @property
    def server(self) -> tuple[str, int]:
        """(host, port) of the API, from ``host``/``port`` or ``url``."""
        if self.url is not None:
            parts = urlsplit(self.url)
            assert parts.hostname is not None
            return parts.hostname, parts.port or 8006
        assert self.host is not None
        return self.host, self.port

    @property
    def base_url(self) -> str:
        host, port = self.server
        shown = f"[{host}]" if ":" in host else host
        return f"https://{shown}:{port}"
