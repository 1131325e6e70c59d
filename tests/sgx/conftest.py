"""Fixtures shared by the SGX tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .vectors import VECTORS


@pytest.fixture(scope="session")
def libpal() -> bytes:
    """The stand-in SGX PAL that every vector was measured with."""
    return (VECTORS / "libpal-test.so").read_bytes()


@pytest.fixture(scope="session")
def key_path() -> Path:
    """The RSA-3072, exponent-3 key that signed every vector."""
    return VECTORS / "test-key.pem"
