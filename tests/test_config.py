"""Tests for gsc.config: config.yaml, its defaults and its old spellings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gsc.config import Config, load_config, parse_config
from gsc.errors import ConfigError, GscError

GRAMINE_GIT = "https://github.com/gramineproject/gramine.git"


def test_missing_file_not_required_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "config.yaml", required=False)

    assert config == Config()
    assert config.distro == "auto"
    assert config.registry == ""
    assert config.gramine_repository == GRAMINE_GIT
    assert config.gramine_branch == "v1.9"
    assert config.gramine_image == ""
    assert config.warnings == ()


def test_missing_file_required_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"

    with pytest.raises(ConfigError, match=r"mine\.yaml: cannot read it") as caught:
        load_config(path, required=True)
    assert isinstance(caught.value, GscError)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"Distro: caf\xe9\n")

    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(path, required=False)


def test_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("Gramine:\n  Image: gramine-local\n", encoding="utf-8")

    config = load_config(path, required=True)

    assert config.gramine_image == "gramine-local"
    assert config.gramine_branch == "v1.9"


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_gives_defaults(text: str) -> None:
    assert parse_config(text, "config.yaml") == Config()


def test_full_file() -> None:
    text = """\
Distro: "debian:12"
Registry: registry.example.com:5000
Gramine:
  Repository: https://example.com/gramine.git
  Branch: v1.8
  Image: gramine:1.8
"""
    assert parse_config(text, "c.yaml") == Config(
        distro="debian:12",
        registry="registry.example.com:5000",
        gramine_repository="https://example.com/gramine.git",
        gramine_branch="v1.8",
        gramine_image="gramine:1.8",
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Distro: auto\nRegistry: x\n  Gramine: y: z\n", 3),
        ("Gramine:\n\tImage: x\n", 2),
        ("Distro: auto\nRegistry: [a, b]]\nGramine: {}\n", 2),
    ],
)
def test_bad_yaml_names_the_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"c.yaml: not valid YAML at line {line}$"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- Distro\n- auto\n", "a list"),
        ("just words\n", "a string"),
        ("7\n", "a number"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"top level must be a mapping, not {kind}"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Distros: auto\n", "Distros"),
        ("Gramine:\n  Image: x\n  Tag: y\n", "Gramine.Tag"),
        ("Graphene:\n  Repo: x\n", "Graphene.Repo"),
        ("SGXDriver:\n  Repository: x\n  Version: 2\n", "SGXDriver.Version"),
    ],
)
def test_unknown_keys_are_named_with_their_path(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        ("Distro: [debian, ubuntu]\n", "Distro", "a list"),
        ("Registry:\n  host: x\n", "Registry", "a mapping"),
        ("Gramine:\n  Image: [a, b]\n", "Gramine.Image", "a list"),
        ("Gramine:\n  Branch: true\n", "Gramine.Branch", "a boolean"),
        ("Graphene:\n  Branch: [v1]\n", "Graphene.Branch", "a list"),
        ("SGXDriver:\n  Branch: [x]\n", "SGXDriver.Branch", "a list"),
    ],
)
def test_values_of_the_wrong_type(text: str, key: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"key '{key}' must be a string, not {kind}"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize("section", ["Gramine", "SGXDriver"])
def test_sections_must_be_mappings(section: str) -> None:
    with pytest.raises(ConfigError, match=f"key '{section}' must be a mapping"):
        parse_config(f"{section}: some text\n", "c.yaml")


def test_numbers_are_taken_as_text() -> None:
    config = parse_config("Gramine:\n  Branch: 1.9\n  Image: 42\n", "c.yaml")

    assert (config.gramine_branch, config.gramine_image) == ("1.9", "42")


def test_graphene_section_means_gramine() -> None:
    text = "Graphene:\n  Repository: https://example.com/g.git\n  Image: old\n"

    config = parse_config(text, "c.yaml")

    assert config.gramine_repository == "https://example.com/g.git"
    assert config.gramine_image == "old"
    assert config.gramine_branch == "v1.9"


def test_gramine_and_graphene_together_is_an_error() -> None:
    text = "Gramine:\n  Image: a\nGraphene:\n  Image: b\n"

    with pytest.raises(ConfigError, match=r"both 'Gramine' and .*'Graphene'"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "SGXDriver:\n  Repository: https://example.com/d.git\n  Branch: dcap\n",
        "SGXDriver:\n",
    ],
)
def test_sgx_driver_is_accepted_with_a_warning(text: str) -> None:
    config = parse_config(text, "c.yaml")

    assert len(config.warnings) == 1
    assert "c.yaml" in config.warnings[0] and "SGXDriver" in config.warnings[0]
    assert config == Config(warnings=config.warnings)


@pytest.mark.parametrize("text", ["Distro:\n", "Distro: '  '\n", "Registry: x\n"])
def test_distro_defaults_to_auto(text: str) -> None:
    assert parse_config(text, "c.yaml").distro == "auto"


def test_empty_gramine_section_gives_defaults() -> None:
    config = parse_config("Gramine:\n", "c.yaml")

    assert config.gramine_repository == GRAMINE_GIT
    assert config.warnings == ()


def test_build_section_holds_lists_of_options() -> None:
    config = parse_config(
        "Build:\n"
        "  Trusted: [/var/lib/app/]\n"
        "  EncryptedVolumes: ['/data:mykey']\n"
        "  Env: ['MODE=prod']\n"
        "  Secrets: allowed\n",
        "c.yaml",
    )

    assert config.build_list("Trusted") == ("/var/lib/app/",)
    assert config.build_list("EncryptedVolumes") == ("/data:mykey",)
    assert config.build_list("Env") == ("MODE=prod",)
    assert config.build_list("Exclude") == ()
    assert config.secrets == "allowed"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Build:\n  Trusted: /x\n", "Build.Trusted"),
        ("Build:\n  Env: [[a]]\n", "Build.Env[0]"),
        ("Build:\n  Volumes: [/x]\n", "Build.Volumes"),
        ("Build: [a]\n", "Build"),
    ],
)
def test_build_section_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        parse_config(text, "c.yaml")


def test_the_shipped_template_is_a_valid_config() -> None:
    template = Path(__file__).resolve().parents[1] / "config.yaml.template"

    config = load_config(template, required=True)

    assert config.distro == "auto"
    assert config.gramine_branch == "v1.9"
