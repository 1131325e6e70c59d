"""The `config.yaml` file: its keys, defaults and legacy spellings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gsc.errors import ConfigError

DEFAULT_REPOSITORY = "https://github.com/gramineproject/gramine.git"
DEFAULT_BRANCH = "v1.9"

_TOP_KEYS = ("Distro", "Registry", "Gramine", "Graphene", "SGXDriver", "Build")
# Lists of the `Build:` section, each adding to the `gsc build` option of the
# same meaning.
BUILD_KEYS = (
    "Trusted",
    "Allowed",
    "Exclude",
    "EncryptedVolumes",
    "TmpfsVolumes",
    "Env",
    "EnvPassthrough",
)
_GRAMINE_KEYS = ("Repository", "Branch", "Image")
_DRIVER_KEYS = ("Repository", "Branch")


@dataclass(frozen=True)
class Config:
    """The settings of one GSC run."""

    distro: str = "auto"
    registry: str = ""
    gramine_repository: str = DEFAULT_REPOSITORY
    gramine_branch: str = DEFAULT_BRANCH
    gramine_image: str = ""
    build: tuple[tuple[str, tuple[str, ...]], ...] = ()
    secrets: str = ""
    warnings: tuple[str, ...] = ()

    def build_list(self, key: str) -> tuple[str, ...]:
        """The values of list `key` of the `Build:` section."""
        return dict(self.build).get(key, ())


def load_config(path: Path, *, required: bool) -> Config:
    """Read `path`; a missing file means defaults unless `required`."""
    if not path.exists() and not required:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"config file {path}: cannot read it ({_reason(err)})"
        ) from err
    return parse_config(text, str(path))


def parse_config(text: str, name: str) -> Config:
    """Parse the YAML text of a config file called `name` in messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {name}: not valid YAML{line}") from err
    if data is None:
        return Config()
    table = _table(data, name, "")
    _reject_unknown(table, _TOP_KEYS, name, "")
    if "Gramine" in table and "Graphene" in table:
        raise ConfigError(
            f"config file {name}: both 'Gramine' and its old name 'Graphene' are set;"
            " keep only 'Gramine'"
        )
    section = "Gramine" if "Gramine" in table else "Graphene"
    gramine = _table(table.get(section, {}), name, section)
    _reject_unknown(gramine, _GRAMINE_KEYS, name, section)
    warnings = _driver_warnings(table, name)

    def text_of(key: str, where: Mapping[str, Any], prefix: str, default: str) -> str:
        return _string(where.get(key, default), name, f"{prefix}{key}")

    return Config(
        distro=text_of("Distro", table, "", "auto").strip() or "auto",
        registry=text_of("Registry", table, "", ""),
        gramine_repository=text_of(
            "Repository", gramine, f"{section}.", DEFAULT_REPOSITORY
        ),
        gramine_branch=text_of("Branch", gramine, f"{section}.", DEFAULT_BRANCH),
        gramine_image=text_of("Image", gramine, f"{section}.", ""),
        build=_build_lists(table, name),
        secrets=_string(
            _table(table.get("Build"), name, "Build").get("Secrets"),
            name,
            "Build.Secrets",
        ),
        warnings=warnings,
    )


def _build_lists(
    table: Mapping[str, Any], name: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    build = _table(table.get("Build"), name, "Build")
    _reject_unknown(build, (*BUILD_KEYS, "Secrets"), name, "Build")
    lists = []
    for key in BUILD_KEYS:
        value = build.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ConfigError(
                f"config file {name}: key 'Build.{key}' must be a list,"
                f" not {_kind(value)}"
            )
        lists.append(
            (
                key,
                tuple(
                    _string(item, name, f"Build.{key}[{i}]")
                    for i, item in enumerate(value)
                ),
            )
        )
    return tuple(lists)


def _driver_warnings(table: Mapping[str, Any], name: str) -> tuple[str, ...]:
    if "SGXDriver" not in table:
        return ()
    driver = _table(table["SGXDriver"], name, "SGXDriver")
    _reject_unknown(driver, _DRIVER_KEYS, name, "SGXDriver")
    for key in _DRIVER_KEYS:
        _string(driver.get(key, ""), name, f"SGXDriver.{key}")
    return (
        f"config file {name}: 'SGXDriver' is ignored; the SGX driver in the Linux"
        " kernel (5.11 and later) needs nothing built into the image",
    )


def _table(value: object, name: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        where = f"key '{key}'" if key else "top level"
        raise ConfigError(
            f"config file {name}: {where} must be a mapping, not {_kind(value)}"
        )
    return value


def _reject_unknown(
    table: Mapping[str, Any], known: tuple[str, ...], name: str, prefix: str
) -> None:
    for key in table:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(
                f"config file {name}: unknown key '{path}'"
                f" (known here: {', '.join(known)})"
            )


def _string(value: object, name: str, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f"config file {name}: key '{key}' must be a string, not {_kind(value)}"
        )
    return str(value)


def _kind(value: object) -> str:
    kinds: dict[type, str] = {
        list: "a list",
        dict: "a mapping",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
    }
    return kinds.get(type(value), type(value).__name__)


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)
