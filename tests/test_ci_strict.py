"""Under CI=true a skipped test fails, naming why it would have skipped; elsewhere it skips."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest

def test_needs_a_lab():
    pytest.skip("the vSphere lab cannot be built here: go is missing")

@pytest.mark.skipif(True, reason="../shared/reference is absent")
def test_needs_data():
    pass

@pytest.mark.xfail(reason="a stated expectation, not a missing piece", strict=True)
def test_known_bug():
    assert False

def test_fine():
    pass
"""


def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, text: str = SUITE
) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_suite=text)
    return pytester.runpytest_inprocess("-p", "ftbridge.testing.ci", "-p", "no:cacheprovider", "-rA")


def test_a_developer_machine_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run(pytester, monkeypatch, None).assert_outcomes(passed=1, skipped=2, xfailed=1)


@pytest.mark.parametrize("ci", ["true", "1", "TRUE", "yes"])
def test_ci_fails_every_skip_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    result = run(pytester, monkeypatch, ci)
    result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)  # a skip in setup: an error
    result.stdout.fnmatch_lines(["*skipped under CI=true: the vSphere lab cannot be built here: go is missing*"])
    result.stdout.fnmatch_lines(["*skipped under CI=true: ../shared/reference is absent*"])


def test_ci_fails_a_module_that_skips_itself(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    text = 'import pytest\npytest.importorskip("vendor_sdk_that_is_not_installed")\n\ndef test_x():\n    pass\n'
    result = run(pytester, monkeypatch, "true", text)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skipped under CI=true*vendor_sdk_that_is_not_installed*"])


def test_ci_false_is_not_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run(pytester, monkeypatch, "false").assert_outcomes(passed=1, skipped=2, xfailed=1)
