"""A pytest plugin: under ``CI=true`` a skipped test fails, so CI hides nothing.

On a developer's machine a test may skip when something it needs is missing (a lab that cannot
be built, a data folder that is absent), with the reason. In CI everything is installed, so
such a skip means the run proved less than it claims: this plugin turns it into a failure that
names the reason. ``xfail`` is left alone (it is a stated expectation, not a missing piece).

Enable it with ``-p ftbridge.testing.ci`` (ftbridge's own ``pyproject.toml`` does, and so does
a driver made by ``ftbridge driver new``). ``CI`` counts as set when it is ``true``, ``1`` or
``yes`` (any case); GitHub Actions, GitLab CI and most others set ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def strict() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport, what: str) -> None:
    reason = _reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{what} skipped under CI=true: {reason}\n"
        f"(CI must prove everything it runs: install what is missing, or unset CI on a developer machine)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if strict() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report, f"test {item.nodeid}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if strict() and report.skipped:
        _fail(report, f"module {collector.nodeid}")
    return report


def pytest_report_header(config: pytest.Config) -> str | None:
    return "CI=true: a skipped test fails (ftbridge.testing.ci)" if strict() else None
