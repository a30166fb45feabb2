#!/usr/bin/env bash
# Carries normad's build dependencies to a machine without Debian packages or network (the lent GPU
# machine: nvcc, PyTorch and cmake, nothing else). Fetch here, unpack there:
#   scripts/device_bundle.sh fetch     here: `apt-get download` the .deb files into .device_deps/debs
#   scripts/device_bundle.sh fetch-data here: the Fashion-MNIST package (30 MB) into .device_deps/data,
#                                      for the FMNIST-ZS check of scripts/device_run.sh (optional)
#   scripts/device_bundle.sh unpack    there: `dpkg -x` each into .device_deps/prefix (never into /)
#                                      and print the CMake flags that point at it
# .device_deps/ is ignored by git. Carry only the .deb files to the device (carry:
# [".device_deps/debs"], 18 MB; the unpacked prefix is ~200 MB, mostly Boost headers) and unpack there.
# Without dpkg on that machine, unpack reads the .deb (ar + tar) with python3.
# After `unpack`, configure with the printed flags, e.g.
#   cmake -S . -B build-gpu -DCMAKE_CUDA_ARCHITECTURES=90 $(scripts/device_bundle.sh flags)
# and run with LD_LIBRARY_PATH=$(scripts/device_bundle.sh libdir) (oneTBB, benchmark, OpenSSL's
# libcrypto come from the prefix). Tested here by configuring and building against the prefix
# (`scripts/device_bundle.sh check`): every package CMake finds must come from the prefix.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=$root/.device_deps
prefix=$deps/prefix
# The -dev packages with their runtime libraries (zlib, libjpeg-turbo, oneTBB, benchmark, libcrypto).
pkgs=(
  libeigen3-dev libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libhwloc15 catch2 libbenchmark-dev libbenchmark1debian
  zlib1g-dev zlib1g libjpeg62-turbo-dev libjpeg62-turbo libstb-dev libstb0 libcli11-dev nlohmann-json3-dev libboost-dev libboost1.74-dev
  libssl-dev libssl3
)
arch_dir=x86_64-linux-gnu

flags() {
  echo "-DCMAKE_PREFIX_PATH=$prefix/usr;$prefix -DCMAKE_LIBRARY_PATH=$prefix/usr/lib/$arch_dir;$prefix/lib/$arch_dir"
}

case "${1:-}" in
  fetch)
    mkdir -p "$deps/debs"
    # apt-get download runs as _apt when it can; a root-owned folder only warns
    (cd "$deps/debs" && apt-get download "${pkgs[@]}")
    du -sh "$deps/debs"
    ;;
  fetch-data)
    mkdir -p "$deps/data"
    (cd "$deps/data" && apt-get download dataset-fashion-mnist)
    du -sh "$deps/data"
    ;;
  unpack)
    [ -d "$deps/debs" ] || { echo "device_bundle: no $deps/debs (run 'fetch' first)" >&2; exit 1; }
    rm -rf "$prefix" && mkdir -p "$prefix"
    for d in "$deps"/debs/*.deb "$deps"/data/*.deb; do
      [ -f "$d" ] || continue  # no data packages fetched
      if command -v dpkg > /dev/null; then
        dpkg -x "$d" "$prefix"
      else
        # No dpkg (a non-Debian machine): a .deb is an ar archive holding data.tar.*; python3 reads both.
        python3 - "$d" "$prefix" <<'PY'
import io, sys, tarfile
deb, dest = sys.argv[1], sys.argv[2]
blob = open(deb, "rb").read()
assert blob[:8] == b"!<arch>\n", deb + ": not an ar archive"
pos = 8
while pos < len(blob):
    name, size = blob[pos:pos + 16].decode().strip().rstrip("/"), int(blob[pos + 48:pos + 58])
    body = blob[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(dest)
    pos += 60 + size + (size % 2)
PY
      fi
    done
    # zlib1g puts libz.so.1 under /lib (merged /usr on the host); the dev symlink points beside it
    if [ -d "$prefix/lib/$arch_dir" ]; then
      mkdir -p "$prefix/usr/lib/$arch_dir"
      cp -a "$prefix/lib/$arch_dir/." "$prefix/usr/lib/$arch_dir/"
    fi
    echo "device_bundle: unpacked $(ls "$deps"/debs/*.deb "$deps"/data/*.deb 2>/dev/null | wc -l) packages into $prefix"
    flags
    ;;
  flags) flags ;;
  libdir) echo "$prefix/usr/lib/$arch_dir" ;;
  check)
    # Configure and build against the prefix; each dependency's CMake entry must point into it.
    build=$deps/check-build
    rm -rf "$build"
    # OpenBLAS (optional, pkg-config) is not in the bundle: the device machine has no pkg-config
    # entry for it, so its build runs the CPU products on Eigen; the check builds the same way.
    # shellcheck disable=SC2046
    cmake -S "$root" -B "$build" -DNORMAD_CUDA=OFF -DNORMAD_OPENBLAS=OFF $(flags) > "$deps/check-configure.log"
    bad=0
    for v in Eigen3_DIR TBB_DIR Catch2_DIR benchmark_DIR Boost_DIR NORMAD_JSON_INCLUDE NORMAD_STB_INCLUDE \
             NORMAD_CLI11_INCLUDE ZLIB_INCLUDE_DIR OPENSSL_INCLUDE_DIR OPENSSL_CRYPTO_LIBRARY; do
      val=$(grep "^$v:" "$build/CMakeCache.txt" | cut -d= -f2-)
      case "$val" in
        "$prefix"*) echo "  $v = $val" ;;
        *) echo "  $v = $val  (NOT from the prefix)"; bad=1 ;;
      esac
    done
    [ $bad -eq 0 ] || { echo "device_bundle: some dependencies were found outside the prefix" >&2; exit 1; }
    cmake --build "$build" -j "$(nproc)" --target normad normad_tests > "$deps/check-build.log" 2>&1 ||
      { tail -20 "$deps/check-build.log"; exit 1; }
    LD_LIBRARY_PATH="$prefix/usr/lib/$arch_dir" "$build/normad_tests" "[backend_ops]" | tail -2
    ;;
  *)
    echo "usage: scripts/device_bundle.sh fetch|fetch-data|unpack|flags|libdir|check" >&2
    exit 2
    ;;
esac
