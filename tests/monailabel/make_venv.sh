#!/usr/bin/env bash
# Build (or reuse) MONAI Label's own virtualenv for the real-server test and for users who follow the README.
# MONAI Label 0.8.5 pins numpy 1.26 and needs these pins to install beside MONAI 1.6.1, so it does not share the
# project's environment. The project is installed into it too (editable, without its dependencies), so that the
# bundles' `iac_components` references resolve for model.pt; model.ts alone does not need it.
# Usage: tests/monailabel/make_venv.sh [VENV]   (default: $IAC_MONAILABEL_VENV or ~/.cache/iac/monailabel-venv)
set -euo pipefail
venv="${1:-${IAC_MONAILABEL_VENV:-$HOME/.cache/iac/monailabel-venv}}"
stamp="$venv/.iac-monailabel-0.8.5"
if [[ -f "$stamp" ]]; then echo "$venv"; exit 0; fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "monailabel==0.8.5" "monai==1.6.1" "pydicom>=2.4.4,<3" "pynetdicom>=2.0.2,<3" \
    "dicomweb-client[gcp]>=0.59.1,<0.60" "pytorch-ignite" "fire" "nibabel" 1>&2
touch "$stamp"
echo "$venv"
