"""Config primitives: durations, secrets, error lines, YAML loading."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.config import (
    ConfigError,
    MqttSettings,
    Strict,
    TlsSettings,
    format_validation_error,
    load_model,
    parse_duration,
    read_yaml,
    require_unique,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("14d", 14 * 86400.0), ("2w", 1209600.0),
        ("500ms", 0.5), ("1.5m", 90.0), (" 10 s ", 10.0), (45, 45.0), (0.25, 0.25),
    ],
)
def test_parse_duration_valid(value: object, seconds: float) -> None:
    """Strings with units and plain numbers of seconds."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["", "30", "s", "5 minutes", "1y", "-5s", "1e3s", "5m30s", None, [1], {"s": 1}],
)
def test_parse_duration_invalid(value: object) -> None:
    """Anything else is a ValueError explaining the form."""
    with pytest.raises(ValueError, match="duration like"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, 0.0, "0s", "0ms", "0.0h", -1, -0.5])
def test_parse_duration_zero_or_negative(value: object) -> None:
    """A duration must be positive."""
    with pytest.raises(ValueError, match="positive"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bool(value: bool) -> None:
    """YAML yes/no are not durations even though bool is an int."""
    with pytest.raises(ValueError, match="duration like"):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_parse_duration_rejects_non_finite(value: float) -> None:
    """YAML .nan / .inf are not durations."""
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)


def test_duration_in_a_model_error_line(tmp_path: Path) -> None:
    """A bad duration in YAML is one 'file: key: why' line."""
    cfg = tmp_path / "m.yaml"
    cfg.write_text("keepalive: soon\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg)
    assert exc.value.lines == [
        f"{cfg}: keepalive: 'soon' is not a duration like '30s', '5m', '1h' or '14d'"
    ]


# --- secrets --------------------------------------------------------------------------------


def write_yaml(tmp_path: Path, text: str, name: str = "mqtt.yaml") -> Path:
    """A YAML file in tmp_path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def test_secret_from_env_given_to_load_model(tmp_path: Path) -> None:
    """password_env is resolved from the environ passed in, not os.environ."""
    cfg = write_yaml(tmp_path, "username: gw\npassword_env: SM_TEST_PW\n")
    assert "SM_TEST_PW" not in os.environ
    settings = load_model(MqttSettings, cfg, environ={"SM_TEST_PW": "hunter2"})
    assert settings.secret("password") == "hunter2"
    assert settings.username == "gw"


def test_missing_env_variable_is_a_config_error(tmp_path: Path) -> None:
    """An unset variable names the variable and the key."""
    cfg = write_yaml(tmp_path, "password_env: SM_TEST_PW\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg, environ={})
    assert exc.value.lines == [
        f"{cfg}: password: environment variable SM_TEST_PW is not set"
    ]


def test_no_secret_configured_is_none(tmp_path: Path) -> None:
    """Without *_env or *_file there is no password."""
    settings = load_model(MqttSettings, write_yaml(tmp_path, "host: broker\n"), environ={})
    assert settings.secret("password") is None


def test_secret_file_0600_accepted(tmp_path: Path) -> None:
    """A private file is read and stripped."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    cfg = write_yaml(tmp_path, f"password_file: {secret}\n")
    assert load_model(MqttSettings, cfg, environ={}).secret("password") == "s3cret"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_secret_file_readable_by_others_rejected(tmp_path: Path, mode: int) -> None:
    """A secret file others can read is refused, with the fix in the message."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    cfg = write_yaml(tmp_path, f"password_file: {secret}\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg, environ={})
    (line,) = exc.value.lines
    assert line.startswith(f"{cfg}: password: ")
    assert f"chmod 600 {secret}" in line
    assert f"mode {mode:o}" in line
    assert "s3cret" not in line


def test_missing_secret_file_rejected(tmp_path: Path) -> None:
    """A secret file that does not exist is a config error naming it."""
    missing = tmp_path / "nope"
    cfg = write_yaml(tmp_path, f"password_file: {missing}\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg, environ={})
    (line,) = exc.value.lines
    assert line.startswith(f"{cfg}: password: cannot read {missing}")


def test_env_and_file_both_rejected(tmp_path: Path) -> None:
    """Giving both sources is ambiguous."""
    secret = tmp_path / "pw"
    secret.write_text("a")
    secret.chmod(0o600)
    cfg = write_yaml(tmp_path, f"password_env: PW\npassword_file: {secret}\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg, environ={"PW": "b"})
    assert exc.value.lines == [
        f"{cfg}: password: give password_env or password_file, not both"
    ]


def test_secret_values_not_in_repr_or_dump(tmp_path: Path) -> None:
    """Resolved secrets never show up where they could be logged."""
    secret = tmp_path / "pw"
    secret.write_text("file-secret-value")
    secret.chmod(0o600)
    from_env = MqttSettings.model_validate(
        {"password_env": "PW"}, context={"environ": {"PW": "env-secret-value"}})
    from_file = MqttSettings.model_validate({"password_file": str(secret)},
                                            context={"environ": {}})
    for settings, value in ((from_env, "env-secret-value"), (from_file, "file-secret-value")):
        assert settings.secret("password") == value
        assert value not in repr(settings)
        assert value not in str(settings)
        assert value not in str(settings.model_dump())
        assert value not in settings.model_dump_json()


# --- error lines ----------------------------------------------------------------------------


class Inner(Strict):
    """A nested section for the error-line tests."""

    port: int = 1


class Outer(Strict):
    """A model with a nested section and a list."""

    name: str
    inner: Inner = Inner()
    items: list[Inner] = []


def test_format_validation_error_lines() -> None:
    """One 'file: path.to.key: why' line per problem; extra keys say 'unknown key'."""
    with pytest.raises(ValidationError) as exc:
        Outer.model_validate({"inner": {"port": "x", "colour": 1}, "items": [{}, {"bogus": 2}]})
    lines = format_validation_error("a.yaml", exc.value)
    assert sorted(lines) == sorted([
        "a.yaml: name: Field required",
        "a.yaml: inner.port: Input should be a valid integer, unable to parse string as an "
        "integer",
        "a.yaml: inner.colour: unknown key",
        "a.yaml: items.1.bogus: unknown key",
    ])


def test_model_level_error_is_top_or_named_key() -> None:
    """A model validator's error sits at its section; a leading 'key:' joins the path."""
    with pytest.raises(ValidationError) as exc:
        MqttSettings.model_validate({"tls": {"cert_file": "c.pem"}}, context={"environ": {}})
    assert format_validation_error("m.yaml", exc.value) == [
        "m.yaml: tls: cert_file and key_file go together"
    ]
    assert TlsSettings(cert_file="c", key_file="k").cert_file == "c"


def test_load_model_unknown_key_and_wrong_type(tmp_path: Path) -> None:
    """load_model turns validation errors into ConfigError lines."""
    cfg = write_yaml(tmp_path, "host: h\nport: 70000\ncolour: blue\ntls: {ca_fil: x}\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg, environ={})
    assert sorted(exc.value.lines) == sorted([
        f"{cfg}: port: Input should be less than or equal to 65535",
        f"{cfg}: colour: unknown key",
        f"{cfg}: tls.ca_fil: unknown key",
    ])
    assert str(exc.value) == "\n".join(exc.value.lines)


def test_load_model_needs_a_mapping(tmp_path: Path) -> None:
    """A YAML list or scalar is not a settings file."""
    cfg = write_yaml(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError) as exc:
        load_model(MqttSettings, cfg)
    assert exc.value.lines == [f"{cfg}: (top): expected a mapping of settings"]


def test_read_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A YAML syntax error is one line with the file and line number."""
    cfg = write_yaml(tmp_path, "host: a\nport: [1, 2\nx: y\n")
    with pytest.raises(ConfigError) as exc:
        read_yaml(cfg)
    (line,) = exc.value.lines
    assert line.startswith(f"{cfg}: line ")
    assert "YAML: " in line
    assert "\n" not in line


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError) as exc:
        read_yaml(tmp_path / "missing.yaml")
    assert exc.value.lines == [f"{tmp_path / 'missing.yaml'}: cannot read: "
                               "No such file or directory"]


def test_models_are_frozen(tmp_path: Path) -> None:
    """Config objects cannot be changed after loading."""
    settings = load_model(MqttSettings, write_yaml(tmp_path, "host: h\n"), environ={})
    with pytest.raises(ValidationError):
        settings.host = "other"  # type: ignore[misc]


def test_require_unique_names_every_repeated_value_once() -> None:
    """One message for every "names must be unique" check: each repeated value, in order."""
    require_unique(["a", "b"], "device name")
    with pytest.raises(ValueError, match=r"^duplicate device name 'b', 'a'$"):
        require_unique(["b", "a", "b", "a", "b"], "device name")


def test_two_probes_of_one_type_need_names(tmp_path: Path) -> None:
    """Two unnamed snmp probes: one line naming the duplicate and the fix."""
    from agent.config import load_agent_config

    path = tmp_path / "agent.yaml"
    probe = "{type: reach, targets: [{name: gw, host: 192.0.2.1, role: gateway}]}"
    path.write_text("agent: {id: a1, school: s1, district: d1}\n"
                    f"mqtt: {{host: 127.0.0.1, username: null}}\nprobes: [{probe}, {probe}]\n")
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    assert info.value.lines == [
        f"{path}: (top): duplicate probe name 'reach'; give each of them a 'name:'"]


def test_collector_queue_must_hold_the_brokers_window(tmp_path: Path) -> None:
    """A write queue smaller than the receive maximum would shed messages every busy second."""
    from collector.config import load_collector_config

    path = tmp_path / "collector.yaml"
    path.write_text("storage: {kind: influxdb1, url: 'http://127.0.0.1:8086', database: x}\n"
                    "mqtt: {receive_maximum: 500}\nwrite: {queue_messages: 400}\n")
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    assert err.value.lines == [
        f"{path}: write.queue_messages: 400 is below mqtt.receive_maximum (500), the messages "
        "the broker may send before an ack; raise it or lower mqtt.receive_maximum"]
    path.write_text("storage: {kind: influxdb1, url: 'http://127.0.0.1:8086', database: x}\n"
                    "mqtt: {receive_maximum: 500, protocol: v311}\nwrite: {queue_messages: 400}\n")
    assert load_collector_config(path).write.queue_messages == 400  # 3.1.1: no such window
