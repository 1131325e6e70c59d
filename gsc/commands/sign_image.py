"""`gsc sign-image`: measure and sign `gsc-IMAGE-unsigned`, making `gsc-IMAGE`."""

from __future__ import annotations

import datetime
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from gsc.dockerfile import LabelInstruction, label_instruction
from gsc.enclave import LABEL, STANDIN_WARNING, Enclave, read_enclave
from gsc.engine import Engine, connect
from gsc.errors import GscError, ImageError, KeyFileError, SignatureError
from gsc.interrupts import scratch_directory
from gsc.naming import signed_name, unsigned_name
from gsc.sgx.keys import key_is_encrypted, load_private_key, load_public_key
from gsc.sgx.sign import attach_signature, sign_sigstruct
from gsc.sgx.sigstruct import Sigstruct, unsigned_sigstruct
from gsc.trust import APP_FILES
from gsc.ui import Ui


@dataclass(frozen=True)
class SignOptions:
    """What the user asked `gsc sign-image` for."""

    image: str
    key: Path | None = None
    passphrase: str | None = None
    passphrase_file: Path | None = None
    passphrase_env: str | None = None
    date: datetime.date | None = None
    public_key: Path | None = None
    export_signing_data: Path | None = None
    signature: Path | None = None


def run(options: SignOptions, ui: Ui) -> int:
    """Sign an unsigned GSC image, or export or attach an external signature."""
    _check_mode(options)
    date = options.date or signing_date()
    private_key = _private_key(options, ui) if options.key else None
    public_key = load_public_key(options.public_key) if options.public_key else None

    engine = connect()
    source = _unsigned_image(engine, options.image)
    ui.step(f"Measuring the enclave of {source}")
    enclave = read_enclave(engine, source)
    if enclave.uses_standin:
        ui.warn(f"image '{source}' {STANDIN_WARNING}")
    modulus = _modulus(private_key, public_key)
    unsigned = unsigned_sigstruct(enclave.manifest, enclave.mr_enclave, date, modulus)
    ui.detail(f"mr_enclave {enclave.mr_enclave.hex()}")

    if options.export_signing_data is not None:
        return _export(unsigned, options.export_signing_data, date, ui)
    if private_key is not None:
        sigstruct = sign_sigstruct(unsigned, private_key)
    else:
        assert public_key is not None and options.signature is not None
        signature = _read_signature(options.signature)
        sigstruct = _attach(unsigned, signature, public_key)

    name = _finish_image(engine, enclave, sigstruct, options.image, ui)
    print(name)
    return 0


def signing_date() -> datetime.date:
    """Today in UTC, or the day SOURCE_DATE_EPOCH names, for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return datetime.datetime.now(datetime.timezone.utc).date()
    try:
        moment = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    except (ValueError, OverflowError, OSError) as err:
        raise GscError(
            f"SOURCE_DATE_EPOCH={epoch!r}: not a number of seconds since 1970"
        ) from err
    return moment.date()


def _check_mode(options: SignOptions) -> None:
    external = options.public_key is not None
    if options.key is not None and external:
        raise GscError("give either KEY or --public-key, not both")
    if options.key is None and not external:
        raise GscError("give a signing KEY, or --public-key for signing elsewhere")
    steps = (options.export_signing_data, options.signature)
    if external and sum(step is not None for step in steps) != 1:
        raise GscError(
            "--public-key needs exactly one of --export-signing-data FILE (step 1)"
            " and --signature FILE (step 2)"
        )
    if not external and any(step is not None for step in steps):
        raise GscError("--export-signing-data and --signature go with --public-key")


def _private_key(options: SignOptions, ui: Ui) -> rsa.RSAPrivateKey:
    assert options.key is not None
    passphrase = read_passphrase(options, ui)
    if passphrase is None and key_is_encrypted(options.key):
        passphrase = _prompt(options.key)
    return load_private_key(options.key, passphrase)


def read_passphrase(options: SignOptions, ui: Ui) -> bytes | None:
    if options.passphrase is not None:
        ui.warn(
            "a passphrase given with -p/--passphrase is visible to other users of"
            " this machine (process list, shell history); prefer --passphrase-file,"
            " --passphrase-env or the prompt"
        )
        return options.passphrase.encode("utf-8")
    if options.passphrase_file is not None:
        try:
            text = options.passphrase_file.read_bytes()
        except OSError as err:
            raise KeyFileError(
                f"passphrase file {options.passphrase_file}: cannot read it"
                f" ({err.strerror or err})"
            ) from None
        return text.splitlines()[0] if text.strip() else b""
    if options.passphrase_env is not None:
        value = os.environ.get(options.passphrase_env)
        if value is None:
            raise KeyFileError(
                f"--passphrase-env {options.passphrase_env}: that variable is not set"
            )
        return value.encode("utf-8")
    return None


def _prompt(key: Path) -> bytes:
    if not sys.stdin.isatty():
        raise KeyFileError(
            f"{key}: the key is encrypted; give its passphrase with --passphrase-file"
            " or --passphrase-env (no terminal to ask on)"
        )
    return getpass.getpass(f"Passphrase for {key}: ").encode("utf-8")


def _modulus(
    private_key: rsa.RSAPrivateKey | None, public_key: rsa.RSAPublicKey | None
) -> int:
    key = private_key.public_key() if private_key is not None else public_key
    assert key is not None
    return key.public_numbers().n


def _unsigned_image(engine: Engine, image: str) -> str:
    """`IMAGE` may name the application image or its unsigned GSC image."""
    for candidate in (unsigned_name(image), image):
        if engine.image_exists(candidate):
            labels = (engine.inspect_image(candidate).get("Config") or {}).get("Labels")
            if (labels or {}).get(LABEL + "version") and not (labels or {}).get(
                LABEL + "mrenclave"
            ):
                return candidate
    raise ImageError(
        f"no unsigned GSC image for '{image}' (looked for {unsigned_name(image)});"
        f" run 'gsc build {image}' first"
    )


def _export(unsigned: Sigstruct, target: Path, date: datetime.date, ui: Ui) -> int:
    target.write_bytes(unsigned.signed_data())
    ui.step(f"Wrote the {len(unsigned.signed_data())} bytes to sign to {target}")
    ui.step(
        f"Sign them with SHA-256 and RSASSA-PKCS1-v1_5 (for example: openssl dgst"
        f" -sha256 -sign KEY.pem -out SIG.bin {target}), then run sign-image again"
        f" with --public-key, --signature SIG.bin and --date {date.isoformat()}"
    )
    print(target)
    return 0


def _attach(
    unsigned: Sigstruct, signature: bytes, public_key: rsa.RSAPublicKey
) -> Sigstruct:
    try:
        return attach_signature(unsigned, signature, public_key)
    except SignatureError as err:
        raise SignatureError(
            f"{err}; sign exactly the bytes --export-signing-data wrote, with the"
            f" private half of --public-key, and pass the same --date"
            f" ({unsigned.date.isoformat()} was used now)"
        ) from None


def _read_signature(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise GscError(
            f"signature file {path}: cannot read it ({err.strerror or err})"
        ) from None


def _finish_image(
    engine: Engine, enclave: Enclave, sigstruct: Sigstruct, image: str, ui: Ui
) -> str:
    name = signed_name(image)
    labels = _signature_labels(sigstruct)
    ui.step(f"Building {name}")
    with scratch_directory("gsc-sign-") as scratch:
        context = Path(scratch)
        _write_public_file(context / "entrypoint.manifest.sgx", enclave.manifest_sgx)
        _write_public_file(context / "entrypoint.sig", sigstruct.to_bytes())
        (context / "Dockerfile").write_text(
            f"FROM {enclave.image_id}\n"
            f"COPY entrypoint.manifest.sgx entrypoint.sig {APP_FILES}/\n"
            f"{labels.text}\n",
            encoding="utf-8",
        )
        result = engine.build(
            context,
            buildargs=dict(labels.build_args),
            labels={},
            nocache=False,
            on_line=ui.detail,
            keep=(enclave.image_id,),
        )
    try:
        engine.tag(result.image_id, name)
    except BaseException:
        engine.discard([*result.layer_ids, result.image_id], (enclave.image_id,))
        raise
    ui.step(f"Signed {name}: mr_enclave {sigstruct.mr_enclave.hex()}")
    return name


def _signature_labels(sigstruct: Sigstruct) -> LabelInstruction:
    """The LABEL instruction that records the signature in the signed image."""
    return label_instruction(
        {
            LABEL + "mrenclave": sigstruct.mr_enclave.hex(),
            LABEL + "mrsigner": sigstruct.mr_signer().hex(),
            LABEL + "isvprodid": str(sigstruct.isv_prod_id),
            LABEL + "isvsvn": str(sigstruct.isv_svn),
            LABEL + "debug": "true" if sigstruct.is_debug else "false",
        }
    )


def _write_public_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)
