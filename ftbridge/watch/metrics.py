"""Prometheus metrics of a watch controller, with the official ``prometheus_client``.

One registry per controller (not the library's global one), served on ``--metrics-address`` at
``/metrics``. Every metric here is listed in the README ("Continuous protection"); a test checks
that the list and this module agree. prometheus_client is imported only when a controller starts.
"""

from __future__ import annotations

from typing import Any

from ftbridge.errors import ConfigError

#: name -> (type, labels, help): the one list the README table is checked against
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ftbridge_vm_protected": (
        "gauge",
        ("endpoint", "vm", "policy"),
        "1 when the VM's best copy is healthy, separated and within its RPO, else 0",
    ),
    "ftbridge_vm_secondary_lag_seconds": (
        "gauge",
        ("endpoint", "vm", "policy", "mechanism"),
        "age of the VM's best secondary (absent when unknown)",
    ),
    "ftbridge_vm_rpo_seconds": ("gauge", ("endpoint", "vm", "policy"), "the RPO of the VM's policy"),
    "ftbridge_findings": ("gauge", ("rule", "severity"), "audit findings of the last cycle by rule and severity"),
    "ftbridge_endpoint_up": ("gauge", ("endpoint",), "1 when the endpoint answered in the last cycle"),
    "ftbridge_inventory_duration_seconds": ("gauge", ("endpoint",), "how long the endpoint's inventory took"),
    "ftbridge_cycle_duration_seconds": ("gauge", (), "how long the last cycle took"),
    "ftbridge_cycle_last_success_timestamp_seconds": ("gauge", (), "when the last cycle ended without error"),
    "ftbridge_cycles": ("counter", (), "cycles run"),
    "ftbridge_actions": ("counter", ("kind", "outcome"), "actions the controller ran, by outcome"),
    "ftbridge_failover_plans": ("counter", (), "failover plans written for confirmed failures"),
    "ftbridge_failovers": ("counter", ("outcome",), "failovers the controller ran (auto_failover)"),
    "ftbridge_suspect_components": ("gauge", (), "hosts and datastores every signal calls down this cycle"),
    "ftbridge_failed_components": ("gauge", (), "hosts and datastores confirmed failed"),
    "ftbridge_storm_guard": ("gauge", (), "1 while the storm guard holds (no failover runs)"),
    "ftbridge_leader": ("gauge", (), "1 while this controller leads"),
    "ftbridge_leader_epoch": ("gauge", (), "the epoch (fencing token) of the leadership this controller saw last"),
    "ftbridge_leader_since_timestamp_seconds": ("gauge", (), "when the current leader took over"),
    "ftbridge_journal_writes_refused": ("counter", (), "journal writes refused because this controller no longer led"),
}


class Metrics:
    def __init__(self) -> None:
        try:
            import prometheus_client as pc
        except ImportError as exc:
            raise ConfigError(
                f"ftbridge watch needs the Python package prometheus-client ({exc})",
                hint="pip install 'ftbridge[watch]'",
            ) from exc
        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        self.m: dict[str, Any] = {}
        for name, (kind, labels, doc) in METRICS.items():
            cls = pc.Counter if kind == "counter" else pc.Gauge
            self.m[name.removesuffix("_total")] = cls(name, doc, labels, registry=self.registry)
        self._server: Any = None

    def __getitem__(self, name: str) -> Any:
        return self.m[name]

    def serve(self, address: str) -> tuple[str, int]:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free one); returns where."""
        host, _, port = address.rpartition(":")
        try:
            server, _thread = self._pc.start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--metrics-address {address!r}: cannot listen there: {exc}") from exc
        self._server = server
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def text(self) -> str:
        return str(self._pc.generate_latest(self.registry).decode())

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
