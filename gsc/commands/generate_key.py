"""`gsc generate-key`: a new enclave signing key (RSA-3072, exponent 3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gsc.sgx.keys import generate_private_key
from gsc.ui import Ui


@dataclass(frozen=True)
class KeyOptions:
    """Where to write the key, and the passphrase that protects it, if any."""

    path: Path
    passphrase: bytes | None = None


def run(options: KeyOptions, ui: Ui) -> int:
    """Write a new signing key readable only by its owner."""
    generate_private_key(options.path, options.passphrase)
    protection = (
        "encrypted with the passphrase" if options.passphrase else "unencrypted"
    )
    ui.step(
        f"Wrote a new RSA-3072 enclave signing key to {options.path} ({protection})"
    )
    print(options.path)
    return 0
