#!/usr/bin/env bash
# Debian packages for the lab/ scripts (run as root). Debian's torch is ~18x slower on the
# reference BLAS, so OpenBLAS (OpenMP build) is installed to take over libblas.so.3.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-onnx python3-regex python3-numpy libopenblas0-openmp
