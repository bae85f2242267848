"""The house rules on imports: the engine is headless; the UI never touches native ML libraries."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RULES = {
    "engine": {"PySide6", "ui", "app", "shiboken6"},
    "ui": {"llama_cpp", "chromadb", "sentence_transformers", "torch", "ctransformers"},
}


def imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_forbidden_imports_anywhere_in_the_package(package):
    """Walks every import, including the lazy ones inside functions that import-linter's
    static graph also sees but a grep for top-of-file imports would miss."""
    bad = []
    for f in sorted((ROOT / package).rglob("*.py")):
        hits = imported_top_modules(f) & RULES[package]
        if hits:
            bad.append(f"{f.relative_to(ROOT)} imports {', '.join(sorted(hits))}")
    assert not bad, "\n".join(bad)


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout, r.stdout


def test_engine_imports_and_runs_without_qt():
    """Importing the engine must not pull in Qt, even indirectly."""
    code = ("import sys, engine.service, engine.__main__, engine.llm, engine.protocol; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'ui')]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_ui_client_import_stays_light():
    """The window's process must not load torch or llama.cpp by importing the client."""
    code = ("import sys, ui.client; "
            "bad = [m for m in ('torch', 'llama_cpp', 'chromadb', 'sentence_transformers') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
