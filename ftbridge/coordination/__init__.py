"""Coordination: which ``ftbridge watch`` controller acts, fenced by a token (see :mod:`.base`).

:func:`coordinator_for` is the composition root: the ``[coordination]`` table picks the adapter.
etcd3gw is imported only when the etcd backend is used.
"""

from __future__ import annotations

from ftbridge.config import Config
from ftbridge.coordination.base import Coordinator, Leadership, Notify, _ignore


def coordinator_for(config: Config, *, name: str | None = None, notify: Notify = _ignore) -> Coordinator:
    from ftbridge.coordination.etcd import controller_name

    cfg = config.coordination
    who = name or controller_name(cfg.name)
    if cfg.backend == "etcd":
        from ftbridge.coordination.etcd import EtcdCoordinator

        return EtcdCoordinator(cfg, who, notify=notify)
    from ftbridge.coordination.local import LocalCoordinator

    return LocalCoordinator(config.state_dir, who, settle=cfg.settle, notify=notify)


__all__ = ["Coordinator", "Leadership", "Notify", "coordinator_for"]
