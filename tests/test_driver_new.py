"""``ftbridge driver new``: the scaffold installs, registers, is lint- and type-clean, and passes
the conformance kit with no edit; the kit fails once a case is taken out of it.

The driver is installed into a venv of its own that sees this environment's packages, so the
running test session's entry points stay as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FTBRIDGE_", "PYTEST_"))}
    full.update(env or {})
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=full, timeout=600)


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``ftbridge driver new acme`` in an empty folder, installed editable: (its folder, python)."""
    work = tmp_path_factory.mktemp("newdriver")
    r = run(sys.executable, "-m", "ftbridge", "driver", "new", "acme", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "pip install -e" in r.stderr
    dist = work / "ftbridge-acme"
    venv = work / "venv"
    r = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    assert r.returncode == 0, r.stderr
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    parent = sysconfig.get_paths()["purelib"]  # this environment: ftbridge, pytest, pydantic, pip
    (site / "_ftbridge_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    python = venv / "bin" / "python"
    r = run(python, "-m", "pip", "install", "-q", "--no-deps", "-e", dist, cwd=work)
    assert r.returncode == 0, r.stdout + r.stderr
    return dist, python


@pytest.mark.slow
def test_the_scaffold_passes_its_kit_with_no_edit(scaffold: tuple[Path, Path]) -> None:
    dist, python = scaffold
    r = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=dist, env={"CI": "true"})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr
    assert " passed" in r.stdout and "skipped" not in r.stdout and "failed" not in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
def test_the_scaffold_is_listed_and_shown(scaffold: tuple[Path, Path]) -> None:
    dist, python = scaffold
    r = run(python, "-m", "ftbridge", "drivers", "list", "-o", "json", cwd=dist)
    assert r.returncode == 0, r.stderr
    listed = {d["name"]: d for d in json.loads(r.stdout)}
    assert listed["acme"]["distribution"] == "ftbridge-acme"
    assert listed["acme"]["target"] == "ftbridge_acme.driver:AcmeDriver"
    r = run(python, "-m", "ftbridge", "drivers", "show", "acme", "-o", "json", cwd=dist)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["missing"] == [] and shown["mechanisms"][0]["name"] == "acme-copy"
    assert {k["key"] for k in shown["config"]} == {"site", "user", "password"}  # plus driver = NAME
    assert r.stderr == "", "a driver speaking the current contract loads without a warning"


@pytest.mark.slow
def test_the_scaffold_is_lint_and_type_clean(scaffold: tuple[Path, Path]) -> None:
    dist, python = scaffold
    for args in (("ruff", "check", "."), ("ruff", "format", "--check", ".")):
        r = run(python, "-m", *args, cwd=dist)
        assert r.returncode == 0, r.stdout + r.stderr
    # ftbridge is installed editable here, through an import hook mypy cannot follow: its source
    r = run(python, "-m", "mypy", "--cache-dir", dist / ".mypy_cache", cwd=dist, env={"MYPYPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_the_scaffold_kit_fails_without_a_case(scaffold: tuple[Path, Path], tmp_path: Path) -> None:
    """Take the move_disk case out of the generated test: the kit fails, naming it."""
    dist, python = scaffold
    src = (dist / "tests" / "test_conformance.py").read_text()
    start = src.index("    @pytest.fixture\n    def move_case")
    end = src.index("    @pytest.fixture", start + 1)
    (tmp_path / "test_without_move_case.py").write_text(src[:start] + src[end:])
    r = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", tmp_path, cwd=dist)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "1 failed" in r.stdout and "provide no 'move_case' fixture" in r.stdout, r.stdout[-3000:]


@pytest.mark.parametrize(
    ("name", "needle"),
    [("Acme", "lower-case letters"), ("acme--x", "lower-case letters"), ("9acme", "lower-case"), ("sim", "taken")],
)
def test_bad_names_are_refused(tmp_path: Path, name: str, needle: str) -> None:
    r = run(sys.executable, "-m", "ftbridge", "driver", "new", name, cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_a_folder_in_use_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "ftbridge-acme").mkdir()
    (tmp_path / "ftbridge-acme" / "mine.txt").write_text("keep")
    r = run(sys.executable, "-m", "ftbridge", "driver", "new", "acme", cwd=tmp_path)
    assert r.returncode == 2 and "not an empty folder" in r.stderr, r.stderr
    assert [p.name for p in (tmp_path / "ftbridge-acme").iterdir()] == ["mine.txt"]


def test_every_spelling_of_a_hyphenated_name(tmp_path: Path) -> None:
    r = run(sys.executable, "-m", "ftbridge", "driver", "new", "my-cloud", "--dir", tmp_path / "x", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = "\n".join(p.read_text() for p in (tmp_path / "x").rglob("*") if p.is_file())
    assert "class MyCloudDriver(" in text and 'name = "my-cloud"' in text
    assert 'my-cloud = "ftbridge_my_cloud.driver:MyCloudDriver"' in text and 'name = "ftbridge-my-cloud"' in text
    assert "MY_CLOUD_PASSWORD" in text and "__" + "NAME__" not in text
    assert (tmp_path / "x" / "ftbridge_my_cloud" / "driver.py").is_file()
