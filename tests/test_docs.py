"""The documentation site builds (strict: a broken link or reference fails), and its contract
reference shows every contract method with what it raises and whether it must be idempotent."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ftbridge.drivers import CAPABILITY_METHODS, Driver, Failover, StoragePlacement

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")

METHODS = sorted(
    {m for ms in CAPABILITY_METHODS.values() for m in ms}
    | {"open", "close", "probe", "poll", "pending_operations", "health", "inventory"}
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def section(page: str, anchor: str) -> str:
    """The text of one object's entry: from its heading to the next object's heading."""
    start = page.index(f'id="{anchor}"')
    nxt = re.search(r'<h[2-6] id="ftbridge\.', page[start + 1 :])
    body = page[start : start + 1 + nxt.start()] if nxt else page[start:]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_the_contract_reference_shows_raises_and_idempotency(site: Path, method: str) -> None:
    page = (site / "contract" / "index.html").read_text()
    owner = next(c for c in (Driver, StoragePlacement, Failover) if method in vars(c))
    text = section(page, f"ftbridge.drivers.base.{owner.__name__}.{method}")
    assert "Raises:" in text and "Idempotent" in text, text[:2000]
    assert ":class:" not in text and ":meth:" not in text, "Sphinx roles are rendered as code"


@pytest.mark.slow
def test_the_site_has_every_page_and_the_generated_matrix(site: Path) -> None:
    for page in ("user-guide", "driver-guide", "contract", "kit", "model", "capabilities"):
        assert (site / page / "index.html").is_file(), page
    matrix = html.unescape((site / "capabilities" / "index.html").read_text())
    assert "<!-- capability-matrix -->" not in matrix
    assert re.search(r"<th>capability</th>\s*<th>[a-z]", matrix), "the generated table is on the page"
    assert "<td>restart</td>" in matrix
    kit = (site / "kit" / "index.html").read_text()
    assert 'id="ftbridge.testing.conformance.DriverConformance"' in kit
    assert "Writing a driver" in (site / "user-guide" / "index.html").read_text(), "the README is included"
