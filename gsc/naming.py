"""The names GSC gives the images it makes."""

from __future__ import annotations

import re

from gsc.engine import split_reference
from gsc.errors import GscError

_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")


def _check_name(image: str) -> None:
    if _IMAGE_ID.match(image):
        raise GscError(
            f"image '{image}': give the image by name, not by ID; GSC names the"
            " images it makes after it (tag it first: docker tag ID NAME)"
        )


def unsigned_name(image: str) -> str:
    """`app:1.0` becomes `gsc-app-unsigned:1.0`."""
    _check_name(image)
    repository, tag = split_reference(image)
    return f"gsc-{repository}-unsigned:{tag}"


def signed_name(image: str) -> str:
    """`app:1.0` (or `gsc-app-unsigned:1.0`) becomes `gsc-app:1.0`."""
    _check_name(image)
    repository, tag = split_reference(image)
    if repository.startswith("gsc-") and repository.endswith("-unsigned"):
        repository = repository[len("gsc-") : -len("-unsigned")]
    return f"gsc-{repository}:{tag}"
