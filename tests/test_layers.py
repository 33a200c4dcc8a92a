"""The layering of docs/architecture.md, checked on every module's imports (static, by AST)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "nwb_lrnn"

# layer -> the package-internal layers it may import
ALLOWED = {
    "base": {"base"},
    "model": {"base", "model"},
    "inference": {"base", "model", "inference"},
    "io": {"base", "io"},
    "estimator": {"base", "model", "inference", "io", "estimator"},
}
# imports that break the layering (none today; an entry here is a debt to list in
# docs/architecture.md)
KNOWN: set[tuple[str, str]] = set()


def _layer_of(rel: str) -> str:
    parts = [p.removesuffix(".py") for p in rel.split("/")]
    if parts[0] in ("model", "inference", "io", "analysis"):
        return parts[0]
    if parts[0] in ("_validate", "data", "_threads", "_version", "_atomic", "_defaults"):
        return "base"
    return "estimator" if parts[0] == "estimator" else "app"


def _target(module: str | None, level: int, rel: str) -> str | None:
    parts = rel.split("/")[:-1]
    if level == 0:
        if not (module or "").startswith("nwb_lrnn"):
            return None
        path = (module or "").split(".")[1:]
    else:
        base = parts[: len(parts) - (level - 1)] if level > 1 else parts
        path = base + (module.split(".") if module else [])
    if not path:
        return "package"
    return _layer_of("/".join(path))


def test_imports_follow_the_layers():
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        layer = _layer_of(rel)
        if layer not in ALLOWED:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module is None:  # from .. import x
                tgt = next((t for t in (_target(a.name, node.level, rel) for a in node.names)
                            if t not in ALLOWED[layer]), None)
            elif isinstance(node, ast.ImportFrom):
                tgt = _target(node.module, node.level, rel)
            elif isinstance(node, ast.Import):
                tgt = next((_target(a.name, 0, rel) for a in node.names
                            if a.name.startswith("nwb_lrnn")), None)
            else:
                continue
            if tgt is None or tgt in ALLOWED[layer] or (rel, tgt) in KNOWN:
                continue
            bad.append(f"{rel} (layer {layer}) imports {tgt}")
    assert not bad, bad


def test_model_and_inference_know_no_files_or_formats():
    for sub in ("model", "inference"):
        for f in (PKG / sub).rglob("*.py"):
            text = f.read_text()
            for lib in ("pynwb", "h5py", "mne", "dandi"):
                assert f"import {lib}" not in text and f"from {lib}" not in text, (f, lib)
