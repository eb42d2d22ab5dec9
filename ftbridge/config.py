"""``ftbridge.toml``: endpoints, failure-domain labels, policies and apply limits.

Found by ``--config``, then ``$FTBRIDGE_CONFIG``, then ``$XDG_CONFIG_HOME/ftbridge/ftbridge.toml``
(``~/.config/ftbridge/ftbridge.toml``). Every error names the file and the dotted key. Each
``[endpoints.NAME]`` table is validated by its driver's own ``Config`` model, so a driver
author's keys get the same treatment as the core's.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftbridge.configtypes import ConfigPath, Duration, Secret, strict_bool
from ftbridge.drivers.base import DriverConfig
from ftbridge.errors import ConfigError, FtbridgeError
from ftbridge.loading import load_toml, validation_line
from ftbridge.model import VM, Level
from ftbridge.secrets import refuse_userinfo


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    _bools = field_validator("*", mode="before")(strict_bool)


class DomainRule(_Strict):
    """Labels for datastores, hosts or clusters whose names match, on matching endpoints.

    Rules apply in file order; a later rule overrides an earlier one at the same level.
    A ``cluster`` rule labels the hosts of that cluster.
    """

    endpoint: str = "*"
    datastore: str | None = None
    host: str | None = None
    cluster: str | None = None
    site: str | None = None
    room: str | None = None
    array: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DomainRule:
        if sum(x is not None for x in (self.datastore, self.host, self.cluster)) != 1:
            raise ValueError("give exactly one of datastore, host or cluster (a name pattern)")
        if not (self.site or self.room or self.array):
            raise ValueError("give at least one label: site, room or array")
        return self

    def labels(self) -> dict[str, str]:
        return {k: v for k in ("site", "room", "array") if (v := getattr(self, k))}


class Selector(_Strict):
    """Which VMs a policy applies to: every given key must match."""

    endpoint: str = "*"
    name: str = "*"
    tag: str | None = None

    def matches(self, vm: VM) -> bool:
        return (
            fnmatch.fnmatchcase(vm.endpoint, self.endpoint)
            and fnmatch.fnmatchcase(vm.name, self.name)
            and (self.tag is None or self.tag in vm.tags)
        )


class Policy(_Strict):
    """What "protected" means for the VMs it applies to."""

    name: str = ""
    separation: Literal["site", "room", "array", "datastore"] = "array"
    rpo: Duration = Field(default=900.0, gt=0.0)
    headroom: float = Field(default=10.0, ge=0, lt=100, description="percent of capacity kept free")
    require_secondary: bool = True
    require_shared_primary: bool = True
    #: secondary mechanisms that count as a copy; empty means any the driver offers
    mechanisms: tuple[str, ...] = ()
    match: tuple[Selector, ...] = (Selector(),)
    #: ``ftbridge watch`` re-creates broken or missing secondaries of these VMs by itself
    auto_reprotect: bool = False
    #: ``ftbridge watch`` runs the failover of these VMs by itself once a failure is confirmed
    #: (refused unless the coordination can keep quorum outside any one site)
    auto_failover: bool = False

    @property
    def level(self) -> Level:
        return Level(self.separation)

    def counts(self, mechanism: str) -> bool:
        return not self.mechanisms or mechanism in self.mechanisms


class ApplySettings(_Strict):
    concurrency_per_endpoint: int = Field(default=0, ge=0, description="0: the driver's default")
    concurrency_per_datastore: int = Field(default=2, ge=1)
    retries: int = Field(default=3, ge=0)
    backoff: Duration = 1.0
    operation_timeout: Duration = 3600.0


class FailoverSettings(_Strict):
    #: how long a failover waits for the platform's own HA to restart an HA VM whose host failed
    #: before ftbridge restarts it itself (from the same intact primary storage)
    ha_grace: Duration = 300.0


class StateSettings(_Strict):
    dir: ConfigPath | None = None
    #: how long a command waits for a journal another process holds, then exit 9
    busy_timeout: Duration = Field(default=60.0, ge=0.0, description="seconds to wait for a busy journal")
    #: finished runs and ftbridge's own plan documents older than this are pruned after each
    #: apply and failover run (see ftbridge.apply.retention); 0 keeps everything
    retention: Duration = Field(default=30 * 86400.0, ge=0.0)


class EtcdMember(_Strict):
    """One etcd member: its client URL and the site (failure domain) it runs in."""

    url: str = Field(pattern=r"^https?://[^/\s]+/?$", description="client URL, e.g. https://etcd-ams1:2379")
    site: str | None = Field(default=None, description="the site label of the member; unknown proves nothing")

    @field_validator("url", mode="before")
    @classmethod
    def _no_credentials(cls, v: Any) -> Any:
        return refuse_userinfo(v)


class CoordinationSettings(_Strict):
    """Who may act: one controller at a time (see ftbridge.coordination)."""

    backend: Literal["local", "etcd"] = "local"
    #: this controller's name in status and events (default: host name and pid)
    name: str | None = None
    members: tuple[EtcdMember, ...] = ()
    prefix: str = Field(default="/ftbridge/", pattern=r"^/.*/$", description="key prefix in etcd")
    lease_ttl: Duration = Field(default=10.0, ge=2.0, le=300.0)
    #: a new leader waits the old lease plus this before it touches a failed domain
    settle: Duration = Field(default=5.0, ge=0.0)
    request_timeout: Duration = Field(default=2.0, gt=0.0)
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    user: str | None = None
    password: Secret | None = None

    @model_validator(mode="after")
    def _etcd_needs_members(self) -> CoordinationSettings:
        if self.backend == "etcd" and not self.members:
            raise ValueError("backend 'etcd' needs members = [{ url = ..., site = ... }, ...]")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.password is not None and self.user is None:
            raise ValueError("password needs user")
        return self


class WatchSettings(_Strict):
    """``ftbridge watch``: how often it looks, and how careful it is before it calls a failure."""

    interval: Duration = Field(default=30.0, gt=0.0, description="seconds between cycles")
    #: refresh a point-in-time copy once its age reaches this share of the policy's RPO
    refresh_at: float = Field(default=0.5, gt=0.0, lt=1.0)
    #: cycles in a row every signal must agree before a host, datastore or site counts as failed
    confirm_cycles: int = Field(default=3, ge=1)
    #: the storm guard holds when more than this share of what is watched looks dead at once
    storm_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    #: at most this many actions per refresh plan (the rest waits for the next cycle)
    max_actions: int = Field(default=50, ge=1)


class _RawConfig(_Strict):
    endpoints: dict[str, dict[str, Any]] = {}
    domains: tuple[DomainRule, ...] = ()
    policies: dict[str, Policy] = {}
    apply: ApplySettings = ApplySettings()
    failover: FailoverSettings = FailoverSettings()
    state: StateSettings = StateSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    watch: WatchSettings = WatchSettings()


@dataclass(frozen=True)
class Config:
    source: Path
    endpoints: dict[str, DriverConfig]
    domains: tuple[DomainRule, ...]
    policies: tuple[Policy, ...]
    apply: ApplySettings
    state_dir: Path
    coordination: CoordinationSettings = CoordinationSettings()
    watch: WatchSettings = WatchSettings()
    failover: FailoverSettings = FailoverSettings()
    state: StateSettings = StateSettings()

    def policy_for(self, vm: VM) -> Policy | None:
        """The first policy (in file order) with a selector matching the VM; None: unmanaged."""
        for p in self.policies:
            if any(s.matches(vm) for s in p.match):
                return p
        return None


def find_config(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("FTBRIDGE_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    path = Path(base) / "ftbridge" / "ftbridge.toml"
    if not path.exists():
        raise ConfigError(
            f"no config file: none given with --config or FTBRIDGE_CONFIG, and {path} does not exist",
            hint="try 'ftbridge demo' for the embedded demo estate",
        )
    return path


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "ftbridge"


def load_config(path: str | Path) -> Config:
    path = Path(path)
    return parse_config(load_toml(path, what="config file"), source=path)


def parse_config(data: dict[str, Any], *, source: Path) -> Config:
    ctx = {"base_dir": source.parent.resolve()}
    # policies: the table name is the policy's name (a wrong type is left to the model's words)
    policies = data.get("policies")
    for name, body in policies.items() if isinstance(policies, dict) else ():
        if isinstance(body, dict):
            body.setdefault("name", name)
    try:
        raw = _RawConfig.model_validate(data, context=ctx)
    except ValidationError as exc:
        raise ConfigError(_explain(source, exc, _RawConfig)) from None
    from ftbridge.drivers.registry import load_driver

    endpoints: dict[str, DriverConfig] = {}
    for name, table in raw.endpoints.items():
        drv = table.get("driver")
        if not isinstance(drv, str):
            raise ConfigError(f"{source}: endpoints.{name}.driver: missing (expected a driver name such as 'proxmox')")
        try:
            cls = load_driver(drv)
        except ConfigError:
            raise
        except FtbridgeError as exc:  # DriverNotFound / DriverLoadError keep their type and code
            exc.message = f"{source}: endpoints.{name}.driver: {exc.message}"
            raise
        try:
            endpoints[name] = cls.Config.model_validate(table, context=ctx)
        except ValidationError as exc:
            raise ConfigError(_explain(source, exc, cls.Config, prefix=f"endpoints.{name}")) from None
    state_dir = raw.state.dir or default_state_dir()
    return Config(
        source,
        endpoints,
        raw.domains,
        tuple(raw.policies.values()),
        raw.apply,
        state_dir,
        raw.coordination,
        raw.watch,
        raw.failover,
        raw.state,
    )


def _explain(source: Path, exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """The first validation error as one line: file, dotted key, what was expected.

    An unknown key is reported before a missing one: a typo causes both, and the typo is news.
    No value from the file is echoed (it may be a secret): the line says what it is, not what."""
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    line = validation_line(str(source), err, [prefix] if prefix else [])
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, [str(x) for x in err["loc"][:-1]])
        line += f" (expected one of: {', '.join(allowed)})" if allowed else ""
    return line


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    current: Any = model
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            ann = current.model_fields[part].annotation
            current = _model_in(ann)
        elif part.isdigit() or current is None:
            continue
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
