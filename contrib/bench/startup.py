"""Start-up cost of the CLI: wall time of `ftbridge --help` and `ftbridge drivers list`,
and whether any hypervisor SDK got imported. Run: python contrib/bench/startup.py [runs]"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SDKS = ("pyVmomi", "proxmoxer", "ovirtsdk4", "pycurl", "requests")


def measure(args: list[str], runs: int) -> tuple[float, float, list[str]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ftbridge", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftbridge", *args], capture_output=True, text=True)
    mods = {ln.split("|")[-1].strip().split(".")[0] for ln in p.stderr.splitlines() if "|" in ln}
    return statistics.median(times), min(times), sorted(m for m in mods if m in SDKS)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    base = measure(["--version"], runs)[0]
    print(
        f"python {sys.version.split()[0]}, {runs} runs each; bare interpreter+ftbridge --version: {base * 1000:.0f} ms"
    )
    for args in (["--help"], ["drivers", "list"]):
        med, best, sdks = measure(args, runs)
        print(
            f"ftbridge {' '.join(args):<14} median {med * 1000:5.0f} ms  best {best * 1000:5.0f} ms  "
            f"SDKs imported: {', '.join(sdks) or 'none'}"
        )


if __name__ == "__main__":
    main()
