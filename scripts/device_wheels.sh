#!/usr/bin/env bash
# The wheels a device call carries in .whl/ (Python 3.12, x86-64): packages the GPU image lacks, or lacks
# at the version needed. diffusers and its need importlib_metadata (the image has no diffusers);
# nvidia-cudnn-frontend 1.20 (the graph API of revise/models/fp8_attention.py); nvmath-python (cuBLASLt's
# FP8 epilogues, benchmarks/fp8_ffn_epilogue.py; its needs cuda-bindings, cuda-core and cuda-pathfinder
# are in the image). benchmarks/issue24.sh installs them into /tmp/site there.
#   bash scripts/device_wheels.sh        # then name .whl in the device call's carry
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '.whl/' .git/info/exclude 2>/dev/null || grep -qxF '/.whl/' .git/info/exclude 2>/dev/null \
    || echo /.whl/ >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
    diffusers==0.42.1 importlib_metadata==10.2.0 nvidia-cudnn-frontend==1.20.0 nvmath-python==1.0.1
ls -la .whl
