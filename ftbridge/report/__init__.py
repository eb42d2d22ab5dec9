"""The DR-readiness report: one self-contained HTML page for an estate, and the same as JSON.

:func:`report_data` gathers what the page shows (placement across failure domains,
protection per policy, RPO compliance, RTO readiness from the last test failovers, findings
with their fixes, the last runs); :func:`render_html` turns that data, and only that data,
into the page. ``ftbridge report -o json`` prints the data, ``--out FILE.html`` writes the page.
"""

from __future__ import annotations

from typing import Any

from ftbridge.apply.history import History
from ftbridge.config import Config
from ftbridge.inventory import Inventory
from ftbridge.report.data import REPORT_KIND, REPORT_SCHEMA_VERSION, Source, build
from ftbridge.report.html import render as render_html


def report_data(
    inv: Inventory,
    config: Config,
    source: Source,
    *,
    history: History | None = None,
    generated_at: float | None = None,
) -> dict[str, Any]:
    """The report of ``inv`` under ``config``'s policies; ``history`` adds tests and runs."""
    from ftbridge.services.compliance import audit_estate

    return build(inv, config, audit_estate(inv, config), history, source, generated_at=generated_at)


__all__ = ["REPORT_KIND", "REPORT_SCHEMA_VERSION", "Source", "render_html", "report_data"]
