# Gramine v1.9 for GSC, compiled from source on debian:11 and
# installed under /gramine/meson_build_output. Written by gsc build-gramine.
#
# Source: https://github.com/gramineproject/gramine.git at v1.9,
# cloned in the compile stage.
#
# What the build downloads:
# - the distro's packages (give a proxy with --build-arg http_proxy=...
#   --build-arg https_proxy=...);
# - Python packages from PyPI that the distro has no recent enough version of;
# - Gramine's source and the sources of its meson subprojects.

# What the installed Gramine needs at run time, and a C compiler with a static
# C library: gsc build compiles its launcher in a stage based on this image.
FROM debian:11 AS gramine-runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends \
        gcc \
        libc6-dev \
        libprotobuf-c1 \
        python3 \
        python3-click \
        python3-cryptography \
        python3-jinja2 \
        python3-pyelftools \
        python3-pip \
    && rm -rf /var/lib/apt/lists/*
# Newer versions than the distro's own, as Gramine needs them.
RUN python3 -m pip install --no-cache-dir \
        'meson>=0.56' \
        'tomli>=1.1.0' \
        'tomli-w>=0.4.0' \
        voluptuous

# The compile stage: build tools, Gramine's source, meson and ninja.
FROM gramine-runtime AS gramine-compile
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends \
        autoconf \
        bison \
        ca-certificates \
        g++ \
        gawk \
        git \
        libprotobuf-c-dev \
        make \
        nasm \
        ninja-build \
        patch \
        pkg-config \
        protobuf-c-compiler \
        protobuf-compiler \
        python3-protobuf \
    && rm -rf /var/lib/apt/lists/*

# Gramine's source, configured, compiled and installed under the prefix.
RUN git clone --quiet --filter=blob:none --no-checkout \
        https://github.com/gramineproject/gramine.git /gramine/source \
    && cd /gramine/source \
    && ref=v1.9 \
    && { commit=$(git rev-parse --verify --quiet "origin/$ref^{commit}" \
            || git rev-parse --verify --quiet "$ref^{commit}") \
        || { echo "Gramine.Branch $ref: no such branch, tag or commit" >&2; exit 1; }; } \
    && git checkout --quiet --detach "$commit" \
    && echo "$commit" > /gramine/source-commit
WORKDIR /gramine/source
RUN meson setup /gramine/build \
        --prefix=/gramine/meson_build_output \
        --libdir=lib/x86_64-linux-gnu \
        --buildtype=release \
        -Dsgx=enabled \
        -Ddirect=enabled
RUN ninja -C /gramine/build \
    && ninja -C /gramine/build install

# The Gramine image: the run-time stage plus the installed Gramine.
FROM gramine-runtime
COPY --from=gramine-compile /gramine/meson_build_output/ /gramine/meson_build_output/
COPY --from=gramine-compile /gramine/source-commit /gramine/source-commit
ENV PATH=/gramine/meson_build_output/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
# gsc build-gramine adds the label gsc.gramine.commit after this build, from
# /gramine/source-commit.
LABEL gsc.gramine.version="v1.9" \
      gsc.gramine.buildtype="release" \
      gsc.gramine.distro="debian:11" \
      gsc.gramine.direct="true" \
      gsc.gramine.prefix="/gramine/meson_build_output" \
      gsc.gramine.libdir="lib/x86_64-linux-gnu" \
      gsc.gramine.standin="false" \
      gsc.gramine.libc="glibc"
