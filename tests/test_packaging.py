"""The production install: every third-party module the package imports at run time is a declared
dependency of ``[project]`` in pyproject.toml, so that ``pip install .`` (without the test extra)
can serve. A module reached only through a dependency of a dependency (httpx through the test
extra, anyio through FastAPI) breaks the day that other package stops pulling it in.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "isps"


def _canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``PyJWT`` and ``pyjwt`` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1))


def imported_modules(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Top-level names of every absolute import in the package, module level or inside a
    function, mapped to the files that import them (relative imports are the package's own)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(package.parent)))
    return found


def third_party(found: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: files for name, files in found.items()
            if name not in sys.stdlib_module_names and name != "isps" and name != "__future__"}


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(spec) for spec in project["dependencies"]}
    extras = {_requirement_name(spec) for specs in project.get("optional-dependencies", {}).values()
              for spec in specs}
    return runtime, extras


def test_every_runtime_import_is_a_declared_dependency():
    distributions = importlib.metadata.packages_distributions()
    runtime, _ = declared()
    missing = []
    for module, files in sorted(third_party(imported_modules()).items()):
        owners = {_canonical(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {sorted(files)[0]}) is not installed: cannot tell its distribution"
        if not owners & runtime:
            missing.append(f"{module} (distribution {'/'.join(sorted(owners))}, imported by {', '.join(sorted(files))})")
    assert not missing, "imported at run time but not in [project] dependencies: " + "; ".join(missing)


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The walk must find lazy imports too: ``isps serve`` crashed on one inside a function."""
    (tmp_path / "m.py").write_text("import os\n\ndef f():\n    import httpx\n    from jwt import encode\n"
                                   "    from . import sibling\n")
    assert set(third_party(imported_modules(tmp_path))) == {"httpx", "jwt"}


def test_declared_dependencies_are_installed():
    """A dependency spelt wrongly in pyproject would make the first check vacuous for it."""
    runtime, _ = declared()
    installed = {_canonical(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    assert not runtime - installed, f"declared but not installed: {sorted(runtime - installed)}"
