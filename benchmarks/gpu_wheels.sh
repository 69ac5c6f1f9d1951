#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before benchmarks/gpu.sh: puts into .whl/ (ignored by git) the
# wheels the GPU machine lacks (it has torch, transformers, accelerate, pandas, pyarrow; not
# lm-eval, datasets or duckdb), for its Python 3.12 on x86-64. About 37 MB; the device tool
# carries at most 64 MiB with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
py=${PYTHON:-.venv/bin/python}
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# lm-eval (pinned as in pyproject.toml) and what it needs beyond the machine's own packages.
wheels=(lm-eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 duckdb==2.0.1 dill==0.4.1 multiprocess==0.70.19
        pytablewriter DataProperty mbstrdecoder pathvalidate tabledata tcolorpy typepy chardet
        rouge-score nltk more-itertools jsonlines)
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${wheels[@]}"
# Two pure-Python dependencies of lm-eval publish no wheels: build them here.
"$py" -m pip wheel -q --no-deps -w .whl sqlitedict word2number
du -sh .whl
