"""Tests for gsc.entrypoint: the program an image runs, found inside the image."""

from __future__ import annotations

import pytest

from gsc.entrypoint import Command, docker_command, find_program, resolve_command
from gsc.errors import ImageError
from gsc.image import DEFAULT_PATH, FileSystem, ImageConfig

from .fstree import ELF, Tree


def config(
    entrypoint: tuple[str, ...] = (),
    cmd: tuple[str, ...] = (),
    working_dir: str = "/",
    path: str | None = None,
) -> ImageConfig:
    env = (("PATH", path),) if path is not None else ()
    return ImageConfig(
        id="sha256:" + "00" * 32,
        name="app",
        entrypoint=entrypoint,
        cmd=cmd,
        env=env,
        working_dir=working_dir,
        user="",
        volumes=(),
        layers=(),
        labels={},
    )


def base() -> Tree:
    """A merged-/usr Debian-like root with a shell, bash, env and python."""
    return (
        Tree()
        .dir("/")
        .dir("/usr")
        .dir("/usr/bin")
        .dir("/usr/local")
        .dir("/usr/local/bin")
        .symlink("/bin", "usr/bin")
        .program("/usr/bin/dash")
        .symlink("/usr/bin/sh", "dash")
        .program("/usr/bin/bash")
        .program("/usr/bin/env")
        .program("/usr/bin/python3.11")
        .symlink("/usr/bin/python3", "python3.11")
        .dir("/app")
    )


def resolve(
    fs: FileSystem,
    argv: tuple[str, ...],
    working_dir: str = "/",
    path: str | None = None,
) -> Command:
    return resolve_command(fs, config(working_dir=working_dir, path=path), argv)


def test_elf_bytes_are_real() -> None:
    assert ELF[:4] == b"\x7fELF"


def test_elf_program_found_in_path_runs_as_it_is() -> None:
    fs = base().read()

    command = resolve(fs, ("dash", "-c", "true"))

    assert command == Command("/usr/bin/dash", ("dash", "-c", "true"), ())


def test_path_is_searched_in_order() -> None:
    fs = base().program("/usr/local/bin/tool").program("/usr/bin/tool").read()

    first = find_program(fs, "tool", "/", "/usr/local/bin:/usr/bin")
    second = find_program(fs, "tool", "/", "/usr/bin:/usr/local/bin")

    assert (first, second) == ("/usr/local/bin/tool", "/usr/bin/tool")


def test_path_search_skips_what_is_not_an_executable_file() -> None:
    fs = (
        base()
        .dir("/usr/local/bin/tool")
        .file("/usr/local/bin/other", b"#!/bin/sh\n", 0o644)
        .program("/usr/bin/tool")
        .program("/usr/bin/other")
        .read()
    )

    assert find_program(fs, "tool", "/", DEFAULT_PATH) == "/usr/bin/tool"
    assert find_program(fs, "other", "/", DEFAULT_PATH) == "/usr/bin/other"


def test_path_of_the_image_is_used() -> None:
    fs = base().dir("/opt").dir("/opt/venv").program("/opt/venv/python3").read()

    command = resolve(fs, ("python3",), path="/opt/venv:/usr/bin")

    assert command.program == "/opt/venv/python3"


def test_program_through_a_symbolic_link_is_its_real_file() -> None:
    fs = base().read()

    command = resolve(fs, ("python3", "-m", "http.server"))

    assert command.program == "/usr/bin/python3.11"
    assert command.argv == ("python3", "-m", "http.server")


def test_program_in_a_linked_directory() -> None:
    fs = base().read()

    command = resolve(fs, ("/bin/bash", "-l"))

    assert command.program == "/usr/bin/bash"
    assert command.argv == ("/bin/bash", "-l")


@pytest.mark.parametrize("name", ["./server", "bin/../server", "/app/server"])
def test_program_with_a_slash_is_taken_from_the_working_dir(name: str) -> None:
    fs = base().dir("/app/bin").program("/app/server").read()

    command = resolve(fs, (name, "--port", "80"), working_dir="/app")

    assert command.program == "/app/server"
    assert command.argv == (name, "--port", "80")


def test_missing_program_in_path() -> None:
    fs = base().read()

    with pytest.raises(ImageError, match="'nginx' is not in the image's PATH"):
        resolve(fs, ("nginx",))


def test_missing_program_by_path() -> None:
    fs = base().read()

    with pytest.raises(ImageError, match="does not exist"):
        resolve(fs, ("./server",), working_dir="/app")


def test_program_that_is_not_executable() -> None:
    fs = base().file("/app/server", ELF, 0o644).read()

    with pytest.raises(ImageError, match="not executable"):
        resolve(fs, ("/app/server",))


def test_program_that_is_a_directory() -> None:
    fs = base().read()

    with pytest.raises(ImageError, match="not a regular file"):
        resolve(fs, ("/app",))


def test_script_with_an_option_on_its_first_line() -> None:
    fs = base().program("/app/run.sh", b"#!/bin/sh -e\nexec python3 app.py\n").read()

    command = resolve(fs, ("/app/run.sh", "one", "two"))

    assert command.program == "/usr/bin/dash"
    assert command.argv == ("/bin/sh", "-e", "/app/run.sh", "one", "two")
    assert command.scripts == ("/app/run.sh",)


def test_script_through_env_runs_the_interpreter_from_path() -> None:
    fs = base().program("/usr/local/bin/start", b"#!/usr/bin/env bash\nexit 0\n").read()

    command = resolve(fs, ("start", "--fast"))

    assert command.program == "/usr/bin/bash"
    assert command.argv == ("bash", "/usr/local/bin/start", "--fast")
    assert command.scripts == ("/usr/local/bin/start",)


def test_script_through_env_to_a_linked_interpreter() -> None:
    fs = base().program("/app/main.py", b"#!/usr/bin/env python3\nprint(1)\n").read()

    command = resolve(fs, ("/app/main.py",))

    assert command.program == "/usr/bin/python3.11"
    assert command.argv == ("python3", "/app/main.py")


def test_script_through_env_with_options_is_refused() -> None:
    fs = base().program("/app/run", b"#!/usr/bin/env -S bash -e\n").read()

    with pytest.raises(ImageError, match="options to env"):
        resolve(fs, ("/app/run",))


def test_script_through_env_to_a_missing_interpreter() -> None:
    fs = base().program("/app/run", b"#!/usr/bin/env ruby\n").read()

    with pytest.raises(ImageError, match="'ruby'"):
        resolve(fs, ("/app/run",))


def test_script_with_carriage_return_and_tab() -> None:
    fs = base().program("/app/run", b"#! /bin/bash\t-x\r\necho\r\n").read()

    command = resolve(fs, ("/app/run",))

    assert command.argv == ("/bin/bash", "-x", "/app/run")


def test_script_whose_interpreter_is_a_script() -> None:
    fs = (
        base()
        .program("/app/outer", b"#!/app/inner\n")
        .program("/app/inner", b"#!/bin/sh\n")
        .read()
    )

    command = resolve(fs, ("/app/outer", "x"))

    assert command.program == "/usr/bin/dash"
    # What Linux builds: each interpreter gets the path of the file it runs.
    assert command.argv == ("/bin/sh", "/app/inner", "/app/outer", "x")
    assert command.scripts == ("/app/outer", "/app/inner")


def test_three_nested_scripts_are_followed() -> None:
    tree = base().program("/app/s3", b"#!/bin/sh\n")
    tree.program("/app/s2", b"#!/app/s3\n").program("/app/s1", b"#!/app/s2\n")

    command = resolve(tree.read(), ("/app/s1",))

    assert command.program == "/usr/bin/dash"
    assert command.scripts == ("/app/s1", "/app/s2", "/app/s3")


def test_too_many_nested_scripts() -> None:
    tree = base().program("/app/s8", b"#!/bin/sh\n")
    for n in range(1, 8):
        tree.program(f"/app/s{n}", f"#!/app/s{n + 1}\n".encode())

    with pytest.raises(ImageError, match="too many nested"):
        resolve(tree.read(), ("/app/s1",))


def test_script_that_runs_itself_does_not_hang() -> None:
    fs = base().program("/app/self", b"#!/app/self\n").read()

    with pytest.raises(ImageError, match="too many nested"):
        resolve(fs, ("/app/self",))


def test_script_with_a_missing_interpreter() -> None:
    fs = base().program("/app/run", b"#!/usr/bin/perl\n").read()

    with pytest.raises(ImageError, match=r"/usr/bin/perl.*does not exist"):
        resolve(fs, ("/app/run",))


@pytest.mark.parametrize("first_line", [b"#!\n", b"#!   \n"])
def test_script_naming_no_interpreter(first_line: bytes) -> None:
    fs = base().program("/app/run", first_line + b"echo\n").read()

    with pytest.raises(ImageError, match="names no interpreter"):
        resolve(fs, ("/app/run",))


def test_first_line_longer_than_linux_reads() -> None:
    fs = base().program("/app/run", b"#!/bin/sh " + b"-x " * 200 + b"\n").read()

    with pytest.raises(ImageError, match="longer"):
        resolve(fs, ("/app/run",))


@pytest.mark.parametrize("content", [b"echo no first line\n", b"", b"\x00\x01binary"])
def test_program_neither_elf_nor_script(content: bytes) -> None:
    fs = base().program("/app/run", content).read()

    with pytest.raises(ImageError, match="neither an ELF executable nor a script"):
        resolve(fs, ("/app/run",))


def test_docker_command_is_entrypoint_then_cmd() -> None:
    image = config(entrypoint=("python3", "-m", "app"), cmd=("--port", "80"))

    assert docker_command(image) == ("python3", "-m", "app", "--port", "80")


def test_docker_command_from_cmd_alone() -> None:
    assert docker_command(config(cmd=("nginx", "-g", "daemon off;"))) == (
        "nginx",
        "-g",
        "daemon off;",
    )


def test_docker_command_from_entrypoint_alone() -> None:
    assert docker_command(config(entrypoint=("/app/server",))) == ("/app/server",)


@pytest.mark.parametrize(
    ("entrypoint", "cmd"), [((), ()), (("",), ()), ((), ("", "x"))]
)
def test_docker_command_with_nothing_to_run(
    entrypoint: tuple[str, ...], cmd: tuple[str, ...]
) -> None:
    with pytest.raises(ImageError, match="neither ENTRYPOINT nor CMD"):
        docker_command(config(entrypoint=entrypoint, cmd=cmd))
