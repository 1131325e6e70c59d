"""Print what this process was started with and what each file named in argv
holds, as one JSON object on stdout.

The GSC engine tests use it to see which files an application under the
Gramine stand-in can read: a VOLUME, a Docker secret.
"""

import json
import os
import sys


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as err:
        return f"error: {err.strerror}"


def main() -> None:
    report = {
        "argv": sys.argv,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "files": {path: read(path) for path in sys.argv[1:]},
    }
    json.dump(report, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
