"""Generated documentation stays in step with the code it is generated from."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bad_inputs_doc_is_current():
    ns = runpy.run_path(str(ROOT / "docs" / "make_bad_inputs.py"))
    text, n = ns["render"]()
    assert n > 200
    assert (ROOT / "docs" / "bad_inputs.md").read_text() == text, (
        "docs/bad_inputs.md is out of date: run .venv/bin/python docs/make_bad_inputs.py")
