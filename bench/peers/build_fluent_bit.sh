#!/bin/sh
# Build Fluent Bit from source for the bench's peer rows (bench/peers/).
#
#   bench/peers/build_fluent_bit.sh SRC PREFIX [JOBS]
#
# SRC is a Fluent Bit source tree (e.g. `git clone https://github.com/fluent/fluent-bit`;
# measured with 5.1.1), PREFIX where bin/fluent-bit is installed. Then run the bench
# with FLUENT_BIT=PREFIX/bin/fluent-bit (or PREFIX/bin on PATH).
#
# A fair build: full optimisation everywhere. FLB_RELEASE=On would force
# RelWithDebInfo (-O2 -g) over CMAKE_BUILD_TYPE and build the bundled monkey
# library (event loop, coroutines) as Debug (-O0), so it is off and both the
# Release and Debug flags are -O3. Only what the bench uses is built: tail,
# dummy, the file, null and http outputs. The system sqlite is used (a source
# snapshot may lack the bundled amalgamation). Debian build deps:
#   cmake flex bison build-essential libssl-dev libyaml-dev pkg-config libsqlite3-dev
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 SRC PREFIX [JOBS]" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
prefix=$2
jobs=${3:-$(nproc)}
build="$src/build-bench"
mkdir -p "$build" "$prefix"
cd "$build"
cmake "$src" \
    -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DFLB_RELEASE=Off -DFLB_DEBUG=Off -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG" -DCMAKE_C_FLAGS_DEBUG="-O3 -DNDEBUG" \
    -DFLB_SECURITY=On \
    -DFLB_PREFER_SYSTEM_LIB_SQLITE=On \
    -DFLB_MINIMAL=On -DFLB_IN_TAIL=On -DFLB_IN_DUMMY=On \
    -DFLB_OUT_FILE=On -DFLB_OUT_NULL=On -DFLB_OUT_HTTP=On \
    -DFLB_JEMALLOC=On -DFLB_EXAMPLES=Off -DFLB_SHARED_LIB=Off \
    -DFLB_TESTS_RUNTIME=Off -DFLB_TESTS_INTERNAL=Off \
    -DFLB_WASM=Off -DFLB_LUAJIT=Off -DFLB_KAFKA=Off -DFLB_ZIG=Off \
    -DFLB_PROXY_GO=Off -DFLB_CUSTOM_CALYPTIA=Off
make -j"$jobs"
make install
"$prefix/bin/fluent-bit" --version
