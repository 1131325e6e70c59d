#!/usr/bin/env bash
# Build the Gramine stand-in (a test double, not Gramine) and lay it out
# under PREFIX the way an installed Gramine is laid out.
#
#   install.sh [PREFIX [LIBDIR]]    (defaults: /gramine/meson_build_output,
#                                    lib/x86_64-linux-gnu; CC defaults to gcc)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/src"
prefix=${1:-/gramine/meson_build_output}
libdir=${2:-lib/x86_64-linux-gnu}
cc=${CC:-gcc}
pkglibdir="$prefix/$libdir/gramine"
cflags=(-O2 -Wall -Wextra -Werror)
shared=(-shared -fPIC -nostdlib "-Wl,--build-id=none")

placeholders=(
    gramine-manifest gramine-manifest-check gramine-sgx-sign
    gramine-sgx-sigstruct-view gramine-sgx-gen-private-key
    gramine-argv-serializer gramine-sgx-pf-crypt gramine-sgx-pf-tamper
    gramine-sgx-quote-view gramine-ratls gramine-gen-depend is-sgx-available
)

# gramine-sgx / gramine-direct: check for the manifest, then start the
# loader the way Gramine's wrappers do.
write_wrapper() {
    local name=$1 pal=$2 suffix=$3
    cat >"$prefix/bin/$name" <<SCRIPT
#!/bin/sh
# $name of the Gramine stand-in (test double, not Gramine).
set -eu
pkglibdir='$pkglibdir'
if [ "\$#" -lt 1 ]; then
    echo "usage: $name APP [ARGS...] (gramine stand-in, not Gramine)" >&2
    exit 2
fi
if [ ! -f "\$1$suffix" ]; then
    echo "$name (gramine stand-in): \$1$suffix does not exist" >&2
    exit 2
fi
exec "\$pkglibdir/$pal/loader" "\$pkglibdir/$pal/libpal.so" init "\$@"
SCRIPT
    chmod 0755 "$prefix/bin/$name"
}

write_placeholder() {
    local name=$1
    cat >"$prefix/bin/$name" <<SCRIPT
#!/bin/sh
# Placeholder in the Gramine stand-in (test double, not Gramine).
echo "$name: not provided by the gramine stand-in (test double, not Gramine)" >&2
exit 1
SCRIPT
    chmod 0755 "$prefix/bin/$name"
}

mkdir -p "$prefix/bin" "$pkglibdir/sgx" "$pkglibdir/direct" \
    "$pkglibdir/runtime/glibc" "$prefix/share/doc/gramine-standin"

"$cc" "${cflags[@]}" -static -o "$pkglibdir/direct/libpal.so" \
    "$src/loader.c" "$src/toml.c" "$src/sha256.c"
ln -sfn libpal.so "$pkglibdir/direct/loader"
# Like Gramine's, the SGX loader is dynamically linked, and where
# libprotobuf-c is installed (as in the stand-in image) it needs it too.
sgx_flags=()
if [ -e /usr/include/protobuf-c/protobuf-c.h ]; then
    sgx_flags=(-DSTANDIN_NEEDS_PROTOBUF_C -lprotobuf-c)
fi
"$cc" "${cflags[@]}" -o "$pkglibdir/sgx/loader" \
    "$src/loader.c" "$src/toml.c" "$src/sha256.c" "${sgx_flags[@]}"

"$cc" "${cflags[@]}" "${shared[@]}" "-Wl,-e,standin_pal_entry" \
    "-Wl,-z,separate-code" -o "$pkglibdir/sgx/libpal.so" "$src/pal.c"
"$cc" "${cflags[@]}" "${shared[@]}" -o "$pkglibdir/libsysdb.so" "$src/sysdb.c"
"$cc" "${cflags[@]}" "${shared[@]}" \
    -o "$pkglibdir/runtime/glibc/libgsc_standin_marker.so" "$src/marker.c"
cat >"$pkglibdir/runtime/glibc/README.standin" <<'TEXT'
Gramine stand-in (test double, not Gramine). Gramine keeps its patched
glibc here; the stand-in runs applications natively with the system C
library, so this directory holds no C library on purpose.
TEXT

write_wrapper gramine-sgx sgx .manifest.sgx
write_wrapper gramine-direct direct .manifest
for name in "${placeholders[@]}"; do
    write_placeholder "$name"
done
cp "$here/README.md" "$prefix/share/doc/gramine-standin/README.md"
