#!/usr/bin/env bash
# Entry point script: proves the script itself ran by adding an argument.
set -euo pipefail
exec python3 /app/report.py from-script "$@"
