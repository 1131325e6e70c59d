"""GSC: run the application of a container image inside an SGX enclave under Gramine."""

__version__ = "0.1.0"
