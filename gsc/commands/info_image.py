"""`gsc info-image`: the measurements and signature of a GSC image."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from gsc.enclave import SIGSTRUCT, STANDIN_WARNING, Enclave, read_enclave
from gsc.engine import connect
from gsc.errors import GscError, SignatureError
from gsc.sgx.sign import verify_sigstruct
from gsc.sgx.sigstruct import Sigstruct, unsigned_sigstruct
from gsc.ui import Ui

# An unsigned image has no signing date; the view needs some date to format.
_NO_DATE = datetime.date(2000, 1, 1)


@dataclass(frozen=True)
class InfoOptions:
    """What the user asked `gsc info-image` for."""

    image: str
    json: bool = False


def run(options: InfoOptions, ui: Ui) -> int:
    """Print what a verifier needs to know about a GSC image's enclave."""
    engine = connect()
    enclave = read_enclave(engine, options.image)
    if enclave.uses_standin:
        ui.warn(f"image '{options.image}' {STANDIN_WARNING}")
    info = describe(enclave)
    if options.json:
        print(json.dumps(info, indent=4))
    else:
        print(_text(info))
    if info["signed"] and not info["signature_valid"]:
        raise GscError(f"image '{options.image}': {info['problem']}")
    return 0


def describe(enclave: Enclave) -> dict[str, Any]:
    """The enclave's measurements, in `gramine-sgx-sigstruct-view`'s field names."""
    if enclave.sigstruct is None:
        expected = unsigned_sigstruct(
            enclave.manifest, enclave.mr_enclave, _NO_DATE, modulus=0
        )
        view = expected.view()
        view["mr_signer"] = None
        view["date"] = None
        return {"image": enclave.image_name, "signed": False, **view}
    sigstruct = _parse(enclave)
    problem = _problem(sigstruct, enclave)
    return {
        "image": enclave.image_name,
        "signed": True,
        **sigstruct.view(),
        "signature_valid": problem is None,
        "problem": problem,
    }


def _parse(enclave: Enclave) -> Sigstruct:
    assert enclave.sigstruct is not None
    try:
        return Sigstruct.from_bytes(enclave.sigstruct)
    except SignatureError as err:
        raise SignatureError(
            f"image '{enclave.image_name}': {SIGSTRUCT}: {err}"
        ) from err


def _problem(sigstruct: Sigstruct, enclave: Enclave) -> str | None:
    try:
        verify_sigstruct(sigstruct)
    except SignatureError as err:
        return f"the signature does not verify ({err})"
    if sigstruct.mr_enclave != enclave.mr_enclave:
        return (
            "the signed mr_enclave differs from the measurement of the image's"
            f" manifest and PAL ({enclave.mr_enclave.hex()})"
        )
    return None


def _text(info: dict[str, Any]) -> str:
    lines = [("image", info["image"])]
    if info["signed"]:
        verdict = "valid" if info["signature_valid"] else f"INVALID: {info['problem']}"
        lines.append(("signature", verdict))
    else:
        lines.append(("signature", "none yet: the values below are what signing gives"))
    for key in ("mr_enclave", "mr_signer", "isv_prod_id", "isv_svn"):
        if info.get(key) is not None:
            lines.append((key, str(info[key])))
    lines.append(("debug_enclave", "yes" if info["debug_enclave"] else "no"))
    for key, mask in (
        ("attribute_flags", "attribute_flags_mask"),
        ("attribute_xfrms", "attribute_xfrm_mask"),
        ("misc_select", "misc_mask"),
    ):
        lines.append((key, f"{info[key]} (mask {info[mask]})"))
    if info.get("date"):
        lines.append(("date", info["date"]))
    return "\n".join(f"{key:<16} {value}" for key, value in lines)
