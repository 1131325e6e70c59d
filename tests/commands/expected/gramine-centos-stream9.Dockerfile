# Gramine v1.9 for GSC, compiled from source on centos:stream9 and
# installed under /gramine/meson_build_output. Written by gsc build-gramine.
#
# Source: https://github.com/gramineproject/gramine.git at v1.9,
# cloned in the compile stage.
#
# What the build downloads:
# - the distro's packages (give a proxy with --build-arg http_proxy=...
#   --build-arg https_proxy=...);
# - Gramine's source and the sources of its meson subprojects.

# What the installed Gramine needs at run time, and a C compiler with a static
# C library: gsc build compiles its launcher in a stage based on this image.
FROM quay.io/centos/centos:stream9 AS gramine-runtime
RUN dnf install -y dnf-plugins-core epel-release \
    && dnf config-manager --set-enabled crb \
    && dnf install -y --setopt=install_weak_deps=False \
        gcc \
        glibc-devel \
        glibc-static \
        protobuf-c \
        python3 \
        python3-click \
        python3-cryptography \
        python3-jinja2 \
        python3-pyelftools \
        python3-tomli \
        python3-tomli-w \
        python3-voluptuous \
    && dnf clean all

# The compile stage: build tools, Gramine's source, meson and ninja.
FROM gramine-runtime AS gramine-compile
RUN dnf install -y --setopt=install_weak_deps=False \
        autoconf \
        bison \
        gawk \
        gcc-c++ \
        git-core \
        make \
        meson \
        nasm \
        ninja-build \
        patch \
        pkgconf-pkg-config \
        protobuf-c-compiler \
        protobuf-c-devel \
        protobuf-compiler \
        python3-protobuf \
    && dnf clean all

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
        --libdir=lib64 \
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
      gsc.gramine.distro="centos:stream9" \
      gsc.gramine.direct="true" \
      gsc.gramine.prefix="/gramine/meson_build_output" \
      gsc.gramine.libdir="lib64" \
      gsc.gramine.standin="false" \
      gsc.gramine.libc="glibc"
