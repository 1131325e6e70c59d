#!/bin/sh
# Runs in the Gramine image while GSC builds: copies the shared libraries
# that Gramine's SGX loader needs (and the dynamic linker) next to GSC's
# launcher, so that the loader starts in any application image, also in one
# without glibc or libprotobuf-c. The loader runs outside the enclave; these
# libraries are not part of the measurement.
set -eu
loader=$1
target=$2
mkdir -p "$target"
if ! ldd "$loader" >"$target.ldd" 2>/dev/null; then
    # A static loader needs nothing.
    rm -f "$target.ldd"
    exit 0
fi
awk '$2 == "=>" && $3 ~ /^\// { print $3 }' "$target.ldd" | while read -r lib; do
    cp -L "$lib" "$target/"
done
interpreter=$(awk '$1 ~ /^\// && $1 ~ /ld-linux/ { print $1 }' "$target.ldd" | head -n 1)
if [ -z "$interpreter" ]; then
    echo "gsc: cannot find the dynamic linker of $loader" >&2
    exit 1
fi
cp -L "$interpreter" "$target/ld.so"
rm -f "$target.ldd"
