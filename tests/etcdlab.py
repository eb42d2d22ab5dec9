"""A real three-member etcd cluster on loopback, and ``ftbridge watch`` controllers as processes.

Debian's ``etcd-server`` package provides the binary (``contrib/setup/test.sh`` installs it).
Each cluster has its own data directories and free ports; each controller is a real
``python -m ftbridge watch -o json`` subprocess whose JSON event lines a reader thread collects,
so tests wait for events (with a generous timeout as a safety net), never for the clock.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ETCD = shutil.which("etcd")
needs_etcd = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (Debian package etcd-server)")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_taken: set[int] = set()  # handed out by this process: never twice


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range. etcd is given its ports
    on the command line, so a port is free when chosen and bound a moment later; a port from
    the ephemeral range can be taken meanwhile by any outgoing connection (the members dial
    each other as they start: "bind: address already in use" failed a CI run). Below that
    range only another listener can take it."""
    low = max(1025, _ephemeral_low())
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(max(1024, low - 12_000), low)
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free loopback port below {low}")


class EtcdCluster:
    SITES = ("ams", "fra", "witness")

    def __init__(self, where: Path, size: int = 3) -> None:
        assert ETCD is not None
        self.where = where
        self.client_ports = [free_port() for _ in range(size)]
        peer_ports = [free_port() for _ in range(size)]
        names = [f"m{i}" for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer_ports, strict=True))
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, name in enumerate(names):
            data = where / name
            data.mkdir(parents=True)
            log = open(where / f"{name}.log", "wb")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        ETCD,
                        "--name", name,
                        "--data-dir", str(data),
                        "--listen-client-urls", self.urls[i],
                        "--advertise-client-urls", self.urls[i],
                        "--listen-peer-urls", f"http://127.0.0.1:{peer_ports[i]}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_ports[i]}",
                        "--initial-cluster", initial,
                        "--initial-cluster-state", "new",
                        "--initial-cluster-token", f"ftbridge-test-{os.getpid()}-{self.client_ports[0]}",
                        "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        self.wait_healthy()

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def members_toml(self) -> str:
        return ", ".join(f'{{ url = "{u}", site = "{s}" }}' for u, s in zip(self.urls, self.SITES, strict=False))

    def wait_healthy(self, timeout: float = 60) -> None:
        """Every member answers and one of them leads (the cluster can commit)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leaders = set()
                for u in self.urls:
                    req = urllib.request.Request(u + "/v3/maintenance/status", data=b"{}", method="POST")
                    with urllib.request.urlopen(req, timeout=2) as r:
                        leaders.add(json.load(r).get("leader"))
                if len(leaders) == 1 and None not in leaders:
                    return
            except OSError:
                pass
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"etcd exited with {p.returncode}: see {self.where}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd cluster not healthy after {timeout}s: see {self.where}")
            time.sleep(0.1)

    def signal_all(self, sig: int) -> None:
        for p in self.procs:
            p.send_signal(sig)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


class Controller:
    """One ``ftbridge watch -o json`` process; its events, as they come."""

    def __init__(self, config: Path, *, extra: tuple[str, ...] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
        self.dump = config.with_suffix(".events.jsonl")  # for a person reading a failed test
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ftbridge", "-c", str(config), "watch", "-o", "json", *extra],
            stdout=subprocess.PIPE,
            stderr=open(config.with_suffix(".stderr"), "wb"),  # noqa: SIM115
            env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], *, after: int = 0, timeout: float = 90
    ) -> dict[str, Any]:
        """The first event (from index ``after``) matching ``pred``; fails when the process ends
        or nothing matched within ``timeout`` (a safety net, not a synchronisation)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events[after:]:
                    if pred(e):
                        return e
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"controller {self.pid} exited ({self.proc.returncode}) before the event")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"controller {self.pid}: no such event within {timeout}s")
                self._cond.wait(left)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e["event"] == name]

    def stop(self) -> None:
        with self._cond:
            self.dump.write_text("".join(json.dumps(e) + "\n" for e in self.events))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_any(
    controllers: list[Controller], pred: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> tuple[Controller, dict[str, Any]]:
    """The first controller that emits an event matching ``pred``."""
    deadline = time.monotonic() + timeout
    while True:
        for c in controllers:
            with c._cond:
                hit = next((e for e in c.events if pred(e)), None)
            if hit is not None:
                return c, hit
        if time.monotonic() > deadline:
            raise AssertionError(f"no controller emitted the event within {timeout}s")
        alive = [c for c in controllers if c.proc.poll() is None]
        if not alive:
            raise AssertionError("every controller exited")
        with alive[0]._cond:
            alive[0]._cond.wait(0.2)  # woken by its events; the others are checked again at once
