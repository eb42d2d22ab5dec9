"""A copy survives only if its compute and its storage both do: ``Location.shared_failure`` and
the inventory's primary/secondary locations, the one place that answers "separated?"."""

from __future__ import annotations

from ftbridge.inventory import Inventory
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    HostState,
    Level,
    PowerState,
    Secondary,
    SecondaryDisk,
)

EP = "ep"


def host(hid: str, site: str | None, cluster: str = "c1", state: HostState = HostState.UP) -> Host:
    return Host(hid, hid, EP, cluster=cluster, state=state, domain=FailureDomain(site=site, host=hid))


def ds(did: str, site: str | None, hosts: tuple[str, ...], shared: bool = True) -> Datastore:
    return Datastore(did, did, EP, "vmfs", shared, hosts, 1 << 40, 1 << 39, domain=FailureDomain(site=site))


HOSTS = (host("a1", "A"), host("a2", "A"), host("b1", "B"), host("b2", "B"), host("u1", None, cluster="c2"))
ALL = tuple(h.id for h in HOSTS)
STORES = (
    ds("dsA", "A", ALL),
    ds("dsB", "B", ALL),
    ds("dsB2", "B", ALL),
    ds("dsU", None, ALL),
    ds("localA1", "A", ("a1",), shared=False),
)


def vm(
    host_id: str | None,
    primary: str,
    sec_ds: str | None = None,
    sec_host: str | None = None,
    ha: bool = False,
    deps: tuple[Dependency, ...] = (),
    missing: tuple[str, ...] = (),
) -> VM:
    secs: tuple[Secondary, ...] = ()
    if sec_ds is not None:
        secs = (Secondary("s", "m", (SecondaryDisk("d0", sec_ds),), host=sec_host, missing=missing),)
    return VM(
        "v",
        "v",
        EP,
        host_id,
        PowerState.ON,
        (Disk("d0", 1 << 30, primary),),
        primary,
        secondaries=secs,
        ha=ha,
        depends_on=deps,
    )


def verdict(v: VM, level: Level = Level.SITE) -> str | None:
    inv = Inventory([EndpointInfo(EP, "sim")], HOSTS, STORES, [v])
    return inv.primary_location(v).shared_failure(inv.secondary_location(v, v.secondaries[0]), level)


def test_compute_and_storage_in_one_site_each_are_separated() -> None:
    assert verdict(vm("a1", "dsA", "dsB", "b1")) is None


def test_primary_running_in_the_secondarys_site_is_not_separated() -> None:
    # ams-ldap01's shape: primary storage in A but compute in B, secondary storage in B
    why = verdict(vm("b1", "dsA", "dsB", "b2"))
    assert why is not None and "site B" in why and "b1" in why


def test_secondary_host_in_the_primarys_site_is_not_separated() -> None:
    why = verdict(vm("a1", "dsA", "dsB", "a2"))
    assert why is not None and "site A" in why and "a2" in why


def test_ha_across_sites_keeps_a_split_primary_alive() -> None:
    # with HA on in a stretched cluster the primary restarts in A when B is lost
    assert verdict(vm("b1", "dsA", "dsB", None, ha=True)) is None
    assert verdict(vm("b1", "dsA", "dsB", "b2", ha=False)) is not None


def test_hostless_secondary_runs_on_any_host_mounting_its_storage() -> None:
    # an ovirt-copy-like secondary: hosts in both sites mount dsB, so its compute survives A
    assert verdict(vm("a1", "dsA", "dsB")) is None


def test_unknown_labels_and_missing_datastores_never_separate() -> None:
    assert verdict(vm("a1", "dsA", "dsU", "b1")) is not None
    assert verdict(vm("a1", "dsA", "gone", "b1")) is not None  # not in the inventory
    assert verdict(vm("a1", "dsA", "dsB", "u1")) is not None  # secondary host: site unknown
    assert verdict(vm("a1", "dsA", "dsB", "nohost")) is not None  # host not in the inventory


def test_a_dependency_counts_as_primary_storage() -> None:
    base = (Dependency("base-disk", "dsB2"),)
    why = verdict(vm("a1", "dsA", "dsB", "b1", deps=base))
    assert why is not None and "dsB2" in why


def test_a_partial_copy_needs_the_primarys_disk() -> None:
    why = verdict(vm("a1", "dsA", "dsB", "b1", missing=("d0",)))
    assert why is not None and "dsA" in why


def test_array_level_ignores_compute_but_host_level_sees_local_storage() -> None:
    # arrays hold storage, not hosts: a secondary host in the same site does not matter at array level
    assert verdict(vm("a1", "dsA", "dsB", "a2"), Level.ARRAY) is None
    assert verdict(vm("a1", "dsA", "dsB", "a2"), Level.SITE) is not None
    assert verdict(vm("b1", "dsB", "dsB2", "a1"), Level.ARRAY) is not None  # arrays unlabelled: unknown
    # one host's loss takes the storage local to it, not shared storage
    assert verdict(vm("a1", "localA1", "dsB", "a1"), Level.HOST) is not None
    assert verdict(vm("a1", "dsA", "dsB", "b1"), Level.HOST) is None


def test_a_host_reported_down_runs_nothing() -> None:
    hosts = (host("a1", "A"), host("b1", "B", state=HostState.DOWN))
    v = vm("a1", "dsA", "dsB")
    inv = Inventory([EndpointInfo(EP, "sim")], hosts, (ds("dsA", "A", ("a1", "b1")), ds("dsB", "B", ("b1",))), [v])
    loc = inv.secondary_location(v, v.secondaries[0])
    assert loc.hosts == ()
    assert "no host can run it" in (inv.primary_location(v).shared_failure(loc, Level.SITE) or "")


def test_inventory_v2_round_trips_the_new_facts_and_v1_still_reads() -> None:
    from ftbridge.model import Network, Nic

    v = VM(
        "v",
        "v",
        EP,
        "a1",
        PowerState.ON,
        (
            Disk(
                "d0", 10, "dsA", kind="lun", movable=False, content="rootdir", allocated=4, thin=True, shared_by=("w",)
            ),
        ),
        "dsA",
        depends_on=(Dependency("iso", "dsB", "[dsB] x.iso"),),
        managed_by="vCLS",
        cluster="c1",
        uuid="u-1",
        nics=(Nic("n0", "net1", "aa:bb", "virtio"),),
        secondaries=(Secondary("s", "m", (SecondaryDisk("d0", "dsB"),), missing=("d1",)),),
    )
    d = Datastore(
        "dsA",
        "dsA",
        EP,
        "dir",
        True,
        ("a1",),
        100,
        50,
        content=frozenset({"images"}),
        thin=True,
        committed=70,
        reserve=5,
    )
    inv = Inventory(
        [EndpointInfo(EP, "sim", capabilities=("inventory",))],
        HOSTS[:1],
        [d],
        [v],
        networks=[Network("net1", "vmbr0", EP, "bridge", vlan=20, hosts=("a1",))],
    )
    again = Inventory.from_dict(inv.to_dict())
    assert again.to_dict() == inv.to_dict()
    assert again.vms[0] == v and again.datastores[0] == d and again.networks == inv.networks
    old = inv.to_dict() | {"schema_version": 1}
    del old["networks"]
    assert Inventory.from_dict(old).vms[0].disks[0].shared_by == ("w",)


def test_a_replica_another_site_keeps_runs_on_that_sites_hosts() -> None:
    """A DR replica is mounted only when failover imports it: its compute is the DR endpoint's
    hosts (not reported down), so it is separated from a primary in the other site."""
    dr_host = Host("d1", "d1", "dr", cluster="dc", domain=FailureDomain(site="D", host="d1"))
    replica = Datastore("rep", "rep", "dr", "iscsi", True, (), 1 << 40, 1 << 39, domain=FailureDomain(site="D"))
    v = VM(
        "v",
        "v",
        EP,
        "a1",
        PowerState.ON,
        (Disk("d0", 1 << 30, "dsA"),),
        "dsA",
        secondaries=(Secondary("s", "ovirt-dr", (SecondaryDisk("d0", "rep"),), target_endpoint="dr"),),
    )
    inv = Inventory([EndpointInfo(EP, "sim"), EndpointInfo("dr", "sim")], (*HOSTS, dr_host), (*STORES, replica), [v])
    loc = inv.secondary_location(v, v.secondaries[0])
    assert [p.name for p in loc.hosts] == ["d1"]
    assert inv.primary_location(v).shared_failure(loc, Level.SITE) is None
    down = Host("d1", "d1", "dr", state=HostState.DOWN, domain=FailureDomain(site="D", host="d1"))
    inv2 = Inventory(inv.endpoints, (*HOSTS, down), (*STORES, replica), [v])
    assert inv2.secondary_location(v, v.secondaries[0]).hosts == ()  # nothing left to run it
