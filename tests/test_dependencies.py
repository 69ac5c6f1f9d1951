"""The dependency floors the code relies on (pyproject.toml), each for a stated reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# package -> (lowest version allowed, why)
FLOORS = {
    "torch": ((2, 6), "loading the .bin checkpoints of most Pythia revisions is unsafe below 2.6 "
                      "even with weights_only=True (CVE-2025-32434)"),
    "transformers": ((4, 57), "from_pretrained(dtype=...) needs 4.56; 4.57 honours "
                              "DISABLE_SAFETENSORS_CONVERSION for .bin loads from the Hub"),
    "streamlit": ((1, 52), "st.switch_page(query_params=...) carries a link's settings to its view; "
                           "1.51 raises on it (every view checked under AppTest on 1.50, 1.51, 1.52)"),
    "altair": ((5, 5), "dashboard/draw.py sets alt.theme, which 5.5 added"),
}


def _floor(spec: str) -> tuple[int, ...] | None:
    match = re.search(r">=\s*([0-9][0-9.]*)", spec)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def test_dependency_floors_are_what_the_code_needs():
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    specs = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower(): d for d in deps}
    for name, (floor, why) in FLOORS.items():
        found = _floor(specs[name])
        assert found is not None and found[:len(floor)] >= floor, f"{name}: {specs[name]} ({why})"
