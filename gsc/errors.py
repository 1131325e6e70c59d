"""The exceptions GSC raises for expected failures.

Every expected failure derives from `GscError`; the command line prints its
message as one line and exits with status 1. Anything else is a bug.
"""


class GscError(Exception):
    """An expected failure caused by the user's input or environment."""


class ConfigError(GscError):
    """The configuration file is unreadable or invalid."""


class ManifestError(GscError):
    """A manifest is unreadable or invalid."""


class ImageError(GscError):
    """An image is missing, unsuitable or unreadable."""


class EngineError(GscError):
    """The container engine cannot be reached or reported a failure."""


class KeyFileError(GscError):
    """A signing key is unreadable or unsuitable."""


class SignatureError(GscError):
    """A SIGSTRUCT is malformed or its signature does not verify."""


class EnclaveError(GscError):
    """The enclave described by a manifest cannot be laid out or measured."""
