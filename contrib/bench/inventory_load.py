"""Saved inventory benchmark: what ``--from FILE`` costs to read back, by estate size.

For each size, ``plan_scale.make_estate`` builds the estate, and the saved inventory is written
as ``ftbridge inventory -o json`` writes it (``Inventory.to_dict``, JSON). Then, in a fresh
process (so its peak RSS is the reading's own), ``Inventory.load`` reads it back (the size
limit, the JSON limits, the shape check, the objects) and the audit runs on it. Printed per
size: the file's size and bytes per VM, CPU seconds of the load and of the audit, and the peak
RSS of the reading process against the file's size.

Run:  python contrib/bench/inventory_load.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from plan_scale import config, make_estate, shape  # noqa: E402  (beside this script)


def write(n_vms: int, path: Path) -> None:
    import orjson

    n_ds, n_domains = shape(n_vms)
    path.write_bytes(orjson.dumps(make_estate(n_vms, n_ds, n_domains).to_dict()))


def own_peak_kib() -> int:
    """This process's own peak resident memory (``VmHWM``). Not ``ru_maxrss``: Linux keeps the
    larger of the parent's peak and the child's own across exec, and the parent here built and
    wrote the estate (figures before this were the parent's peak at 100k and above)."""
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmHWM:")).split()[1])


def load(path: Path) -> dict[str, float]:
    from ftbridge.audit import audit
    from ftbridge.inventory import Inventory

    t0 = time.process_time()
    inv = Inventory.load(str(path))
    t_load = time.process_time() - t0
    t0 = time.process_time()
    audit(inv, config())
    t_audit = time.process_time() - t0
    rss = own_peak_kib() / 1024
    return {"vms": len(inv.vms), "load_s": t_load, "audit_s": t_audit, "rss_mib": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="VM counts, comma-separated")
    ap.add_argument("--load", type=Path, help=argparse.SUPPRESS)  # one file, JSON out
    args = ap.parse_args()
    if args.load:
        print(json.dumps(load(args.load)))
        return 0
    print(f"{'VMs':>10} {'file MiB':>9} {'B/VM':>6} {'load s':>8} {'audit s':>8} {'RSS MiB':>8} {'RSS/file':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.sizes.split(",") if x):
            path = Path(tmp) / f"inventory-{n}.json"
            write(n, path)
            size = path.stat().st_size
            out = subprocess.run(
                [sys.executable, __file__, "--load", str(path)], check=True, capture_output=True, text=True
            )
            r = json.loads(out.stdout)
            print(
                f"{r['vms']:>10,} {size / 2**20:>9.1f} {size / r['vms']:>6.0f} {r['load_s']:>8.1f} "
                f"{r['audit_s']:>8.1f} {r['rss_mib']:>8.0f} {r['rss_mib'] * 2**20 / size:>9.1f}"
            )
            path.unlink()
    print("CPU seconds; RSS: the reading process's own peak (the file's bytes and text, the objects, the audit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
