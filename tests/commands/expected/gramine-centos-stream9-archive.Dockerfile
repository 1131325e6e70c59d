# Gramine v1.9 for GSC, compiled from source on centos:stream9 and
# installed under /gramine/meson_build_output. Written by gsc build-gramine.
#
# Source: the archive gramine-source.tar.gz beside this Dockerfile, copied
# from the host.
#
# What the build downloads:
# - the distro's packages (give a proxy with --build-arg http_proxy=...
#   --build-arg https_proxy=...);
# - nothing else: meson runs with --wrap-mode=nodownload and takes Gramine's
#   subprojects from subprojects/packagecache/ in the source.

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
ADD gramine-source.tar.gz /gramine/source/
WORKDIR /gramine/source/gramine-v1.9
RUN meson setup /gramine/build \
        --prefix=/gramine/meson_build_output \
        --libdir=lib64 \
        --buildtype=debugoptimized \
        --wrap-mode=nodownload \
        -Dsgx=enabled \
        -Ddirect=enabled
RUN ninja -C /gramine/build \
    && ninja -C /gramine/build install

# The Gramine image: the run-time stage plus the installed Gramine.
FROM gramine-runtime
COPY --from=gramine-compile /gramine/meson_build_output/ /gramine/meson_build_output/
ENV PATH=/gramine/meson_build_output/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
LABEL gsc.gramine.version="v1.9" \
      gsc.gramine.commit="unknown" \
      gsc.gramine.buildtype="debugoptimized" \
      gsc.gramine.distro="centos:stream9" \
      gsc.gramine.direct="true" \
      gsc.gramine.prefix="/gramine/meson_build_output" \
      gsc.gramine.libdir="lib64" \
      gsc.gramine.standin="false" \
      gsc.gramine.libc="glibc"
