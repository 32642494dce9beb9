"""Config primitives shared by agent and collector: durations, secrets, MQTT/TLS, YAML loading.

Secrets are never inline: a setting ``password`` is given as ``password_env`` (the name of an
environment variable) or ``password_file`` (a file readable only by the service user).  They are
resolved while validating, with the environment passed as validation context, so a missing
variable is a config error with its path, like any other.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from common.wire import DEFAULT_PREFIX, ID_RE

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_KEY_PREFIX_RE: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.+)$", re.S)


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """'30s', '5m', '1h', '14d' (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration like '30s', '5m', '1h' or '14d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration like '30s', '5m', '1h' or '14d'")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError("a duration must be positive")
    return seconds


def _parse_duration_or_zero(value: object) -> float:
    return parse_duration(value, allow_zero=True)


Duration = Annotated[float, BeforeValidator(parse_duration)]
# For spreads and offsets, where "0s" means none.
DurationOrZero = Annotated[float, BeforeValidator(_parse_duration_or_zero)]
Identifier = Annotated[str, Field(pattern=ID_RE.pattern)]


def require_unique(values: Iterable[str], what: str, hint: str = "") -> None:
    """Raise ValueError naming every repeated value: "duplicate <what> 'a', 'b'<hint>"."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for value in values:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    if repeated:
        raise ValueError(f"duplicate {what} {', '.join(map(repr, repeated))}{hint}")


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretError(ValueError):
    """A secret that cannot be read safely."""


def read_secret(env_name: str | None, file_path: str | None, environ: Mapping[str, str],
                what: str) -> str | None:
    """Resolve a secret from an environment variable or a private file (mode 0600 or stricter)."""
    if env_name and file_path:
        raise SecretError(f"give {what}_env or {what}_file, not both")
    if env_name:
        if env_name not in environ:
            raise SecretError(f"environment variable {env_name} is not set")
        return environ[env_name]
    if file_path:
        path = Path(file_path)
        try:
            mode = path.stat().st_mode
            # Windows reports group/other bits on every file; there the folder's ACL protects it.
            if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecretError(
                    f"{file_path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                    f"run: chmod 600 {file_path}"
                )
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read {file_path}: {exc.strerror}") from None
    return None


UNRESOLVED_PLACEHOLDER: Final = "<unresolved secret>"


@dataclass(frozen=True)
class UnresolvedSecret:
    """A secret check-config --no-secrets could not resolve: its model, name and why."""

    owner: WithSecrets
    name: str
    why: str


def secret_paths(root: BaseModel, unresolved: list[UnresolvedSecret]) -> list[str]:
    """'path.to.key: why' for each unresolved secret, found by walking the validated model."""
    where: dict[int, str] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, BaseModel):
            where.setdefault(id(value), path)
            for key in type(value).model_fields:
                walk(getattr(value, key), f"{path}.{key}" if path else key)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{path}.{i}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")

    walk(root, "")
    return [f"{where.get(id(u.owner), '(top)') or '(top)'}.{u.name}: {u.why}"
            for u in unresolved]


class WithSecrets(Strict):
    """A model whose ``<name>_env`` / ``<name>_file`` pairs are resolved on validation.

    Subclasses list the secret names in ``_secret_names``; resolved values are kept in a private
    attribute so they never appear in ``repr`` or ``model_dump`` (and so never in logs).
    """

    _secret_names: ClassVar[tuple[str, ...]] = ()
    _secrets: dict[str, str | None] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> WithSecrets:
        context = info.context if isinstance(info.context, dict) else {}
        environ: Mapping[str, str] = context.get("environ", os.environ)
        # check-config --no-secrets: where the secrets are not set (CI, a control node) an
        # unresolved one is noted and the rest of the file is still checked.
        unresolved: list[UnresolvedSecret] | None = context.get("unresolved_secrets")
        for name in self._secret_names:
            env_name = getattr(self, f"{name}_env")
            file_path = getattr(self, f"{name}_file")
            try:
                self._secrets[name] = read_secret(env_name, file_path, environ, name)
            except SecretError as exc:
                if unresolved is None or (env_name and file_path):
                    raise ValueError(f"{name}: {exc}") from None
                unresolved.append(UnresolvedSecret(self, name, str(exc)))
                # Checks elsewhere ask whether a secret is configured (SNMP v2c needs a
                # community): a placeholder says it is; this model only serves the check.
                self._secrets[name] = UNRESOLVED_PLACEHOLDER
        return self

    def secret(self, name: str) -> str | None:
        """The resolved value of secret ``name`` (None when not configured)."""
        return self._secrets.get(name)


def split_host_port(value: str) -> tuple[str, int | None]:
    """'[v6]:port', '[v6]', 'name:port', 'name', a bare IPv6 address -> (host, port or None).

    Raises ValueError for a malformed value (brackets around something not IPv6, a bad port).
    """
    text = value.strip()
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r}: expected [IPv6] or [IPv6]:PORT")
        try:
            ipaddress.IPv6Address(inner.split("%", 1)[0])  # a zone (%eth0) is allowed
        except ValueError:
            raise ValueError(f"{value!r}: {inner!r} is not an IPv6 address") from None
        return inner, _port(rest[1:], value) if rest else None
    if text.count(":") == 1:  # name:port; two or more colons: a bare IPv6 address
        host, _, port = text.partition(":")
        return host, _port(port, value)
    return text, None


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{value!r}: the port must be 1..65535")
    return int(text)


class TlsSettings(Strict):
    """TLS for MQTT: CA to verify the broker; optional client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSettings(WithSecrets):
    """How to reach the broker."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password",)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls: TlsSettings | None = None
    topic_prefix: str = DEFAULT_PREFIX
    keepalive: Duration = 30.0
    session_expiry: Duration = 7 * 86400.0
    # v5: Mosquitto, EMQX.  v311: brokers that speak only MQTT 3.1.1 (the NATS server's MQTT
    # listener, RabbitMQ's MQTT plugin): no session expiry (a session is kept, clean_session
    # false, when session_expiry is not 0), no shared subscriptions.
    protocol: Literal["v5", "v311"] = "v5"

    @model_validator(mode="before")
    @classmethod
    def _host_port(cls, data: Any) -> Any:
        """``host: "[2001:db8::1]:8883"`` (or ``"broker:8883"``, ``"[::1]"``): host and port."""
        if isinstance(data, dict) and isinstance(data.get("host"), str):
            host, port = split_host_port(data["host"])
            if port is not None and "port" in data and data["port"] != port:
                raise ValueError(f"host: gives port {port}, port: says {data['port']}")
            data = {**data, "host": host, **({"port": port} if port is not None else {})}
        return data


def format_validation_error(file: str, exc: ValidationError) -> list[str]:
    """One line per problem: 'file: path.to.key: why'."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        # Model validators name the key they check in front of the message
        # ("schools.1.district: unknown district 'x'"): make that part of the path.
        elif err["type"] == "value_error" and (m := _KEY_PREFIX_RE.match(msg)):
            loc.append(m.group(1))
            msg = m.group(2)
        path = ".".join(loc) or "(top)"
        lines.append(f"{file}: {path}: {msg}")
    return lines


class ConfigError(Exception):
    """A config file that cannot be used; ``lines`` are ready to print."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; raises ConfigError with the file and line on failure."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:  # e.g. saved as GBK by a Windows editor
        raise ConfigError([f"{path}: byte {exc.start}: not UTF-8; save the file as UTF-8"]) \
            from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(top)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}: {where}: YAML: {problem}"]) from None
    except RecursionError:  # PyYAML parses nested collections by recursion
        raise ConfigError([f"{path}: (top): YAML: collections nested too deeply"]) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # PyYAML's constructors fail with plain Python errors on some scalars: an unquoted
        # impossible date (2026-02-30), !!timestamp on a non-date, !!int 0x, !!bool maybe.
        raise ConfigError([f"{path}: (top): YAML: cannot read a value: {exc}"]) from None


def load_model(model: type[M], path: str | Path, data: Any = None,
               environ: Mapping[str, str] | None = None,
               unresolved_secrets: list[UnresolvedSecret] | None = None) -> M:
    """Validate YAML data (read from ``path`` when not given) into ``model``.

    With ``unresolved_secrets`` a secret that cannot be read is appended there, not an error.
    """
    if data is None:
        data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: (top): expected a mapping of settings"])
    context: dict[str, Any] = {"environ": os.environ if environ is None else environ,
                               "base": Path(path).parent}
    if unresolved_secrets is not None:
        context["unresolved_secrets"] = unresolved_secrets
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from None
