#!/usr/bin/env bash
# Download the wheels benchmarks/gpu/wheels.txt names for the GPU machine (Python 3.12, x86-64 Linux) into .whl/
# (ignored by git; the device tool carries it: `carry: [".whl"]`). The nnU-Net part needs nnunetv2 and its
# dependencies too, which exceed what a device call carries; on such a machine `--parts` leaves it out.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -q '^/.whl/$' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
grep -v '^#' benchmarks/gpu/wheels.txt | grep -v '^$' | while read -r req; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$req"
done
du -sh .whl
