#!/usr/bin/env bash
# Installs the Debian packages normad needs, only those that are missing (idempotent).
# `apt-get update` runs only when something has to be installed. Run as root (or with sudo available).
set -euo pipefail

pkgs=(
  cmake g++ make pkg-config clang libclang-rt-dev
  libeigen3-dev libtbb-dev catch2 libbenchmark-dev zlib1g-dev libjpeg-dev libstb-dev
  libcli11-dev nlohmann-json3-dev libboost-dev libssl-dev
  python3 python3-numpy python3-scipy python3-pil python3-torch python3-torchvision python3-sklearn
  libopenblas0-pthread libopenblas-dev rsync
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
  chromium
)

missing=()
for p in "${pkgs[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is fully installed.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
