"""Print what this process was started with, as one JSON object on stdout.

The GSC engine tests run this program natively and under the Gramine
stand-in and compare the reports.
"""

import json
import os
import sys


def main() -> None:
    report = {
        "argv": sys.argv,
        "executable": sys.executable,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "gid": os.getgid(),
    }
    json.dump(report, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
