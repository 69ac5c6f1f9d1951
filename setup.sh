#!/usr/bin/env bash
# Creates .venv and installs evalsuite with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on this project's machines 2.13.0 is a local CPU wheel; an unpinned
# torch would download a multi-GB CUDA build. On a GPU machine, install the CUDA torch you want
# before running this script and pip keeps it.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
echo "evalsuite installed in .venv"
