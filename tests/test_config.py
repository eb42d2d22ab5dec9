"""Config: found, parsed, validated; every error names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbridge.config import find_config, load_config
from ftbridge.errors import ConfigError, DriverNotFound, MissingSecret
from ftbridge.model import VM, PowerState


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ftbridge.toml"
    p.write_text(text)
    return p


BASE = """
[endpoints.lab]
driver = "sim"
estate = "estate.toml"
name = "lab"
"""


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.endpoints["lab"].estate == tmp_path.resolve() / "estate.toml"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[endpoints.lab\n", "malformed TOML"),
        (BASE + "colour = 'red'\n", "endpoints.lab.colour: unknown key (expected one of: "),
        (BASE + "op_seconds = 'fast'\n", "endpoints.lab.op_seconds:"),
        ("[endpoints.x]\nestate = 'e'\n", "endpoints.x.driver: missing"),
        ("[policies.p]\nseparation = 'planet'\n", "policies.p.separation:"),
        ("[policies.p]\nrpo = 'soon'\n", "policies.p.rpo: expected a duration"),
        ("[[domains]]\nsite = 'a'\n", "domains[0]: give exactly one of datastore, host or cluster"),
        ("[[domains]]\ndatastore = 'x*'\n", "domains[0]: give at least one label"),
        ("[apply]\nretries = -1\n", "apply.retries:"),
        (
            "[surprise]\n",
            "surprise: unknown key (expected one of: apply, coordination, domains, endpoints, failover, policies, "
            "state, watch)",
        ),
        (BASE + "password = 'hunter2'\n", "secrets are never written in the config"),
        (BASE + "password = { env = 'A', file = 'b' }\n", "give exactly one of env"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert expected in msg, msg
    assert "\n" not in msg
    assert "hunter2" not in msg


def test_unknown_driver_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(DriverNotFound) as info:
        load_config(write(tmp_path, "[endpoints.x]\ndriver = 'nosuch'\n"))
    assert "endpoints.x.driver" in str(info.value) and "'nosuch'" in str(info.value)
    assert info.value.exit_code == 4


def test_missing_secret_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PW", raising=False)
    cfg = load_config(write(tmp_path, BASE + "password = { env = 'NO_SUCH_PW' }\n"))
    with pytest.raises(MissingSecret) as info:
        cfg.endpoints["lab"].password.reveal("endpoints.lab.password")  # type: ignore[attr-defined]
    assert "NO_SUCH_PW" in str(info.value) and info.value.exit_code == 3


def test_secret_file_is_read_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-value\n")
    cfg = load_config(write(tmp_path, BASE + "password = { file = 'pw' }\n"))
    assert cfg.endpoints["lab"].password.reveal() == "s3cret-value"  # type: ignore[attr-defined]


def test_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ConfigError, match="no config file"):
        find_config(None)
    user = tmp_path / "xdg" / "ftbridge" / "ftbridge.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config(None) == user
    monkeypatch.setenv("FTBRIDGE_CONFIG", "/from/env.toml")
    assert find_config(None) == Path("/from/env.toml")
    assert find_config("/explicit.toml") == Path("/explicit.toml")


def vm(name: str, endpoint: str = "e", tags: tuple[str, ...] = ()) -> VM:
    return VM(id=name, name=name, endpoint=endpoint, host=None, power=PowerState.ON, disks=(), tags=tags)


def test_first_matching_policy_wins(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
[policies.gold]
match = [{ tag = "tier1" }, { name = "db-*" }]
[policies.rtm-only]
match = [{ endpoint = "rtm" }]
""",
        )
    )
    assert cfg.policy_for(vm("x", tags=("tier1",))).name == "gold"  # type: ignore[union-attr]
    assert cfg.policy_for(vm("db-01")).name == "gold"  # type: ignore[union-attr]
    assert cfg.policy_for(vm("web", endpoint="rtm")).name == "rtm-only"  # type: ignore[union-attr]
    assert cfg.policy_for(vm("web", endpoint="ams")) is None
    p = cfg.policies[0]
    assert (p.separation, p.rpo, p.headroom, p.require_secondary) == ("array", 900.0, 10.0, True)
