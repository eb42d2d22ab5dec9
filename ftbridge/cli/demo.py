"""``ftbridge demo``: the embedded demo estate, audited (and planned), in one command."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, say
from ftbridge.cli.render import busy

if TYPE_CHECKING:
    from ftbridge.apply.locks import EstateLock

DEMO_FILES = ("ftbridge.toml", "estate.toml")


def demo_dir() -> Path:
    from ftbridge.config import default_state_dir

    return default_state_dir() / "demo"


def install_demo(reset: bool = False) -> Path:
    """Copy the demo config and estate into the state directory; reset drops the sim state."""
    from contextlib import nullcontext

    target = demo_dir()
    target.mkdir(parents=True, exist_ok=True)
    if reset:
        with _estate_locked(target) if (target / "ftbridge.toml").exists() else nullcontext():
            for pattern in ("*.simstate.db*", "*.simstate.json*"):  # the sim's state, an older one's too
                for p in target.glob(pattern):
                    p.unlink()
    src = resources.files("ftbridge") / "demo"
    for name in DEMO_FILES:
        dst = target / name
        if reset or not dst.exists():
            with resources.as_file(src / name) as f:
                shutil.copyfile(f, dst)
    return target


def _estate_locked(target: Path) -> EstateLock:
    """The demo estates' locks: a reset refuses (exit 9) while a run holds one of them."""
    from ftbridge.apply.locks import EstateLock
    from ftbridge.config import load_config

    cfg = load_config(target / "ftbridge.toml")
    sims = [name for name, ep in cfg.endpoints.items() if ep.driver == "sim"]
    return EstateLock.for_endpoints(cfg, sims, holder="ftbridge demo --reset")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        ctx: typer.Context,
        reset: Annotated[bool, typer.Option("--reset", help="start the demo estate afresh")] = False,
        output: OutputOpt = Output.table,
    ) -> None:
        """Audit (and plan) the embedded demo estate: three sim endpoints shaped like vSphere,
        Proxmox VE and oVirt, about 60 VMs. Exits 0; the findings are the point."""
        from ftbridge.cli.audit import show_report
        from ftbridge.cli.common import run
        from ftbridge.cli.plan import demo_plan, show_plan_data
        from ftbridge.services.compliance import audit_estate
        from ftbridge.services.inventory import collect
        from ftbridge.services.session import Session

        where = install_demo(reset)
        state = run(ctx)
        state.config_path = str(where / "ftbridge.toml")
        cfg = state.config()
        with busy("reading the demo estate"), Session(cfg) as session:
            inv = collect(session)
        plan_data = demo_plan(ctx, inv, cfg, where)
        report = audit_estate(inv, cfg, plan_data)
        if output is Output.json:
            emit_json({"audit": report.to_dict(), "plan": plan_data})
        else:
            show_report(report, all_rows=True)  # the demo's findings are the point: every row
            show_plan_data(plan_data, "the demo plan", all_rows=True)
        say(f"demo config: {where / 'ftbridge.toml'}  (try: ftbridge -c {where / 'ftbridge.toml'} inventory)")
        say(
            f"migration story: ftbridge -c {where / 'ftbridge.toml'} migrate plan --source vc-ams --target pve-rtm, "
            "then 'migrate gaps' (what FT becomes on Proxmox) and 'migrate export --format pve'"
        )
