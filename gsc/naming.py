"""The names GSC gives the images it makes."""

from __future__ import annotations

from gsc.engine import split_reference


def unsigned_name(image: str) -> str:
    """`app:1.0` becomes `gsc-app-unsigned:1.0`."""
    repository, tag = split_reference(image)
    return f"gsc-{repository}-unsigned:{tag}"


def signed_name(image: str) -> str:
    """`app:1.0` (or `gsc-app-unsigned:1.0`) becomes `gsc-app:1.0`."""
    repository, tag = split_reference(image)
    if repository.startswith("gsc-") and repository.endswith("-unsigned"):
        repository = repository[len("gsc-") : -len("-unsigned")]
    return f"gsc-{repository}:{tag}"
