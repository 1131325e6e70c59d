"""The only module that talks to the container engine (any Docker API engine)."""

from __future__ import annotations

import io
import re
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from gsc.errors import EngineError, ImageError
from gsc.interrupts import signals_held

_LAYER_LINE = re.compile(r"^ ---> ([0-9a-f]{12})$")
_CONTAINER_LINE = re.compile(r"^ ---> Running in ([0-9a-f]{12})$")
# A command for containers that are created to be read and are never started.
_NEVER_RUN = ["/gsc-container-is-never-started"]
_CHUNK = 1 << 20
_TEMPORARY = "gsc.temporary"
# How long an interrupted build waits for the engine's own cleanup.
_CLEANUP_WAIT = 15.0
_CLEANUP_QUIET = 1.5


@dataclass(frozen=True)
class BuildResult:
    """What a finished image build left behind."""

    image_id: str
    layer_ids: tuple[str, ...]


class Engine:
    """A connection to the container engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._api = client.api

    def inspect_image(self, name: str) -> dict[str, Any]:
        """The engine's description of image `name`; nothing is pulled."""
        try:
            attrs: dict[str, Any] = self._api.inspect_image(name)
        except docker.errors.ImageNotFound as err:
            raise ImageError(
                f"image '{name}' not found in the local engine; build or load it"
                " first (GSC never pulls)"
            ) from err
        except docker.errors.APIError as err:
            raise ImageError(f"image '{name}': {_explain(err)}") from err
        return attrs

    def info(self) -> dict[str, Any]:
        """The engine's description of itself (`docker info`)."""
        try:
            info: dict[str, Any] = self._api.info()
        except docker.errors.APIError as err:
            raise EngineError(f"the engine: {_explain(err)}") from err
        return info

    def image_exists(self, name: str) -> bool:
        try:
            self._api.inspect_image(name)
        except docker.errors.ImageNotFound:
            return False
        return True

    @contextmanager
    def export_filesystem(self, image_id: str) -> Iterator[Iterator[bytes]]:
        """The merged file system of an image, as a stream of tar bytes."""
        with self._created_container(image_id) as container_id:
            yield self._api.export(container_id, chunk_size=_CHUNK)

    def save_image(self, image_id: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (its layers as tars), streamed."""
        try:
            stream: Iterator[bytes] = self._api.get_image(image_id, chunk_size=_CHUNK)
        except docker.errors.APIError as err:
            raise EngineError(
                f"cannot save image {image_id[:19]}: {_explain(err)}"
            ) from err
        return stream

    @contextmanager
    def archive(self, image_id: str, path: str) -> Iterator[Iterator[bytes]]:
        """A tar stream of `path` (a file or directory) inside an image."""
        with self._created_container(image_id) as container_id:
            try:
                stream, _ = self._api.get_archive(container_id, path, chunk_size=_CHUNK)
            except docker.errors.NotFound as err:
                raise ImageError(f"image {image_id[:19]}: no {path} in it") from err
            yield stream

    def read_files(self, image_id: str, paths: list[str]) -> dict[str, bytes]:
        """The contents of regular files `paths` of an image; absent ones left out."""
        found: dict[str, bytes] = {}
        with self._created_container(image_id) as container_id:
            for path in paths:
                try:
                    stream, _ = self._api.get_archive(container_id, path)
                except docker.errors.NotFound:
                    continue
                data = _single_file(b"".join(stream))
                if data is not None:
                    found[path] = data
        return found

    @contextmanager
    def _created_container(self, image_id: str) -> Iterator[str]:
        container_id = ""
        try:
            # Ctrl-C waits for the engine's answer, so that the ID is known
            # and the container removed below.
            with signals_held():
                container_id = self._create_container(image_id)
            yield container_id
        finally:
            if container_id:
                self._remove_container(container_id)

    def _create_container(self, image_id: str) -> str:
        # The label finds the container again if an interruption still
        # arrives after the engine made it but before its ID came back:
        # signals are held only when this runs on the main thread.
        token = uuid.uuid4().hex
        try:
            created = self._api.create_container(
                image_id, command=_NEVER_RUN, labels={_TEMPORARY: token}
            )
        except docker.errors.APIError as err:
            raise EngineError(
                f"cannot read image {image_id[:19]}: {_explain(err)}"
            ) from err
        except BaseException:
            self._remove_labelled(token)
            raise
        return str(created["Id"])

    def _remove_labelled(self, token: str) -> None:
        """Remove the container labelled `token` once the engine has made it.

        The engine goes on making a container after its client stopped
        waiting for the answer, so a look right away can miss it: look until
        it is found, or for a short quiet spell.
        """
        deadline = time.monotonic() + _CLEANUP_QUIET
        while time.monotonic() < deadline:
            with suppress(docker.errors.APIError, requests.exceptions.RequestException):
                found = self._api.containers(
                    all=True, filters={"label": f"{_TEMPORARY}={token}"}
                )
                for container in found:
                    self._remove_container(container["Id"])
                if found:
                    return
            time.sleep(0.05)

    def _remove_container(self, container_id: str) -> None:
        with (
            signals_held(),
            suppress(docker.errors.APIError, requests.exceptions.RequestException),
        ):
            self._api.remove_container(container_id, force=True)

    def build(
        self,
        context: Path,
        *,
        buildargs: dict[str, str],
        labels: dict[str, str],
        nocache: bool,
        on_line: Callable[[str], None],
        network_mode: str | None = None,
        keep: tuple[str, ...] = (),
    ) -> BuildResult:
        """Build the Dockerfile in `context`; the result is left untagged.

        If the build fails or is interrupted, the images it made so far are
        removed again (never those in `keep`, nor any that carry a tag).
        """
        log = _BuildLog(on_line)
        started = time.time()
        try:
            return self._build(context, log, buildargs, labels, nocache, network_mode)
        except BaseException:
            # The engine cleans up after a build its client left only later;
            # do it now, so that nothing of this build outlives the command.
            for container_id in log.containers:
                self._remove_container(container_id)
            self._await_build_containers(started)
            self.discard(log.layers, keep)
            raise

    def _await_build_containers(self, started: float) -> None:
        """Wait for the engine to remove the containers of a build it is still
        winding down: until none has been seen for a short quiet spell."""
        deadline = time.monotonic() + _CLEANUP_WAIT
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if self._build_containers_exist(started):
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= _CLEANUP_QUIET:
                return
            time.sleep(0.1)

    def _build_containers_exist(self, started: float) -> bool:
        try:
            found = self._api.containers(all=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return False
        return any(
            c.get("Created", 0) >= int(started)
            and _TEMPORARY not in (c.get("Labels") or {})
            for c in found
        )

    def _build(
        self,
        context: Path,
        log: _BuildLog,
        buildargs: dict[str, str],
        labels: dict[str, str],
        nocache: bool,
        network_mode: str | None,
    ) -> BuildResult:
        image_id = ""
        # The build's HTTP response, kept so that it is closed however the
        # reading ends. After an interrupt, nothing else closes it before the
        # garbage collector gets to it, and while its connection is open the
        # engine builds on: the images of the later steps were left behind
        # (tests/test_interrupt.py caught it in about one run in six).
        responses: list[requests.Response] = []

        def keep(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            responses.append(response)

        self._api.hooks["response"].append(keep)
        try:
            stream = self._api.build(
                path=str(context),
                buildargs=buildargs,
                labels=labels,
                nocache=nocache,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                network_mode=network_mode,
            )
            self._api.hooks["response"].remove(keep)
            for chunk in stream:
                image_id = log.feed(chunk) or image_id
        except docker.errors.APIError as err:
            raise EngineError(f"image build failed: {_explain(err)}") from err
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
        ) as err:
            raise EngineError(
                "the container engine went away during the build"
                f" ({err.__class__.__name__})"
            ) from err
        finally:
            if keep in self._api.hooks["response"]:
                self._api.hooks["response"].remove(keep)
            for response in responses:
                response.close()
        if not image_id:
            raise EngineError(
                "image build ended without an image; run with -v to see why"
            )
        return BuildResult(image_id, tuple(log.layers))

    def discard(self, image_ids: list[str], keep: tuple[str, ...] = ()) -> None:
        """Remove untagged images made by a build, newest first; keep the rest."""
        for image_id in reversed(image_ids):
            short = image_id.removeprefix("sha256:")
            if any(k.removeprefix("sha256:").startswith(short) for k in keep):
                continue
            if not self.image_tags(image_id):
                self.remove_image(image_id)

    def tag(self, image_id: str, name: str) -> None:
        repository, tag = split_reference(name)
        try:
            self._api.tag(image_id, repository, tag)
        except docker.errors.APIError as err:
            raise EngineError(f"cannot tag image as {name}: {_explain(err)}") from err

    def remove_image(self, image_id: str) -> bool:
        """Remove an image if nothing uses it; say whether it went."""
        try:
            with signals_held():
                self._api.remove_image(image_id, noprune=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return False
        return True

    def image_tags(self, image_id: str) -> list[str]:
        try:
            tags: list[str] = self._api.inspect_image(image_id).get("RepoTags") or []
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return []
        return tags


class _BuildLog:
    """Follows a build's output: the images it made and the one it ended with."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.layers: list[str] = []  # made by this build; not cache hits or bases
        self.containers: list[str] = []  # the intermediate containers it ran
        self._on_line = on_line
        self._reused = False

    def feed(self, chunk: dict[str, Any]) -> str:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise EngineError(f"image build failed: {str(detail).strip()}")
        for line in str(chunk.get("stream", "")).splitlines():
            self._line(line)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            return str(aux["ID"])
        return ""

    def _line(self, line: str) -> None:
        # The ID line that ends a step names an image this build made, unless
        # the step was a FROM (whose line names no image for scratch) or a
        # cache hit.
        if line.startswith("Step "):
            self._reused = " : FROM " in line
        elif line.strip() == "---> Using cache":
            self._reused = True
        running = _CONTAINER_LINE.match(line)
        if running:
            self.containers.append(running.group(1))
        match = _LAYER_LINE.match(line)
        if match:
            if not self._reused:
                self.layers.append(match.group(1))
            self._reused = False
        if line.strip():
            self._on_line(line.rstrip())


def _single_file(archive: bytes) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        if member is None or not member.isreg():
            return None
        source = tar.extractfile(member)
        return source.read() if source is not None else None


def split_reference(name: str) -> tuple[str, str]:
    """Split `repo[:tag]` into repository and tag (default `latest`)."""
    name = name.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"


# Raised by the docker SDK when the engine stops answering mid-conversation.
LOST_ENGINE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.HTTPError,
)


def connect() -> Engine:
    """Connect to the engine named by DOCKER_HOST (or the default socket)."""
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise EngineError(
            "cannot reach the container engine; is it running, and is DOCKER_HOST"
            f" right? ({_first_line(str(err))})"
        ) from err
    return Engine(client)


def _explain(err: docker.errors.APIError) -> str:
    explanation = err.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return _first_line(str(explanation or err))


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "no details"
