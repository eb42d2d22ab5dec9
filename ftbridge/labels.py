"""Merge the operator's failure-domain labels into an inventory.

Drivers fill what the platform knows (host and datastore names); ``[[domains]]`` rules add
site, room and array. A host's labels come from host rules and from the rules of its cluster;
a datastore's site and room from the hosts that mount it when they all agree (a local disk is
in its host's room), then from datastore rules, which win.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import replace

from ftbridge.config import DomainRule
from ftbridge.inventory import Inventory


def apply_labels(inv: Inventory, rules: Iterable[DomainRule]) -> Inventory:
    rules = tuple(rules)
    if not rules:
        return inv

    def matching(endpoint: str, attr: str, name: str | None) -> dict[str, str]:
        labels: dict[str, str] = {}
        if name is None:
            return labels
        for r in rules:
            pat = getattr(r, attr)
            if pat is not None and fnmatch.fnmatchcase(endpoint, r.endpoint) and fnmatch.fnmatchcase(name, pat):
                labels.update(r.labels())
        return labels

    hosts = []
    for h in inv.hosts:
        labels: dict[str, str] = {**matching(h.endpoint, "cluster", h.cluster), **matching(h.endpoint, "host", h.name)}
        hosts.append(replace(h, domain=h.domain.merged(labels)) if labels else h)
    by_id = {(h.endpoint, h.id): h for h in hosts}
    datastores = []
    for d in inv.datastores:
        labels = {}
        mounted = [by_id[(d.endpoint, hid)].domain for hid in d.hosts if (d.endpoint, hid) in by_id]
        for level in ("site", "room"):  # inherited where every mounting host agrees
            values = {getattr(m, level) for m in mounted}
            if len(values) == 1 and None not in values:
                labels[level] = values.pop()
        labels.update(matching(d.endpoint, "datastore", d.name))  # explicit rules win
        datastores.append(replace(d, domain=d.domain.merged(labels)) if labels else d)
    return Inventory(inv.endpoints, hosts, datastores, inv.vms, inv.collected_at, networks=inv.networks)
