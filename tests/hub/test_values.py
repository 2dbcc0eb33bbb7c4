"""labdeck.hub.values: the reader of the chart's mounted values (like z2jh.py)."""

import pytest
from traitlets.config import Config

from labdeck.hub import values as v

VALUES = {
    "hub": {"baseUrl": "/", "db": {"type": "sqlite-pvc"}, "concurrentSpawnLimit": 0, "extraEnv": None},
    "singleuser": {"image": {"name": "ghcr.io/labdeck/singleuser", "tag": "0.1.0"}, "cpu": "2"},
    "Names": {"hub": "rel-labdeck-hub", "broker": "rel-labdeck-broker"},
}


@pytest.mark.parametrize(
    "key, default, expected",
    [
        ("hub.baseUrl", None, "/"),
        ("hub.db.type", None, "sqlite-pvc"),
        ("singleuser.image", None, {"name": "ghcr.io/labdeck/singleuser", "tag": "0.1.0"}),
        ("hub.missing", "dflt", "dflt"),
        ("nothere.at.all", 7, 7),
        ("hub.extraEnv", {}, {}),  # explicit null counts as absent
        ("hub.concurrentSpawnLimit", 5, 0),  # falsy values are values
    ],
    ids=["00", "01", "02", "03", "04", "05", "06"],
)
def test_get_config(key, default, expected):
    assert v.get_config(key, default, values=VALUES) == expected


def test_get_config_through_a_scalar_is_an_error():
    with pytest.raises(v.ValuesError, match="singleuser.cpu"):
        v.get_config("singleuser.cpu.limit", values=VALUES)


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a."])
def test_invalid_keys(key):
    with pytest.raises(ValueError):
        v.lookup(VALUES, key)


def test_set_config_if_not_none():
    c = Config()
    v.set_config_if_not_none(c.KubeSpawner, "image", "singleuser.image.name", values=VALUES)
    v.set_config_if_not_none(c.KubeSpawner, "cpu_limit", "singleuser.nope", values=VALUES)
    v.set_config_if_not_none(c.JupyterHub, "concurrent_spawn_limit", "hub.concurrentSpawnLimit", values=VALUES)
    assert c.KubeSpawner.image == "ghcr.io/labdeck/singleuser"
    assert "cpu_limit" not in c.KubeSpawner
    assert c.JupyterHub.concurrent_spawn_limit == 0


def test_get_name():
    assert v.get_name("broker", values=VALUES) == "rel-labdeck-broker"
    with pytest.raises(v.ValuesError, match="'proxy'"):
        v.get_name("proxy", values=VALUES)


def test_values_file_from_env(tmp_path, monkeypatch):
    f = tmp_path / "values.yaml"
    f.write_text("hub:\n  baseUrl: /jh/\n")
    monkeypatch.setenv(v.VALUES_FILE_ENV, str(f))
    v.clear_cache()
    try:
        assert v.values_file_path() == f
        assert v.get_config("hub.baseUrl") == "/jh/"
    finally:
        v.clear_cache()


def test_values_file_default_path(monkeypatch):
    monkeypatch.delenv(v.VALUES_FILE_ENV, raising=False)
    assert str(v.values_file_path()) == "/usr/local/etc/labdeck/values.yaml"


@pytest.mark.parametrize(
    "text, error",
    [("- a\n- b\n", "mapping at the top level"), ("hub: [unclosed\n", "not valid YAML")],
)
def test_malformed_values_file(tmp_path, text, error):
    f = tmp_path / "values.yaml"
    f.write_text(text)
    v.clear_cache()
    with pytest.raises(v.ValuesError, match=error):
        v.load_values(f)
    v.clear_cache()


def test_missing_values_file(tmp_path):
    v.clear_cache()
    with pytest.raises(v.ValuesError, match="cannot read"):
        v.load_values(tmp_path / "nope.yaml")


def test_empty_values_file(tmp_path):
    f = tmp_path / "values.yaml"
    f.write_text("")
    v.clear_cache()
    assert v.load_values(f) == {}
    v.clear_cache()


def test_get_secret_value(tmp_path, monkeypatch):
    (tmp_path / "proxy.token").write_text("s3cr3t-token\n")
    monkeypatch.setenv(v.SECRET_DIR_ENV, str(tmp_path))
    assert v.get_secret_value("proxy.token") == "s3cr3t-token"
    assert v.get_secret_value("hub.cookie-secret", None) is None
    with pytest.raises(v.ValuesError) as e:
        v.get_secret_value("broker.api-token")
    assert "broker.api-token" in str(e.value)
    with pytest.raises(ValueError):
        v.get_secret_value("../etc/passwd")


def test_secret_value_never_in_errors(tmp_path):
    (tmp_path / "proxy.token").write_text("s3cr3t-token")
    with pytest.raises(v.ValuesError) as e:
        v.get_secret_value("other", secret_dir=tmp_path)
    assert "s3cr3t" not in str(e.value)


def test_check_config_sections():
    assert v.check_config_sections({"KubeSpawner": {}, "kubeSpawner": {}, "jupyterHub": {}}) == [
        "jupyterHub",
        "kubeSpawner",
    ]
