"""The dependency direction web -> experiments -> bandit, and each package's own limits, checked on the source."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "bandit": {"experiments", "web", "flask", "sqlite3", "sqlite_utils", "click"},
    "experiments": {"web", "flask", "click"},
}
# Within a layer: (package folder, dotted prefixes it may import from this project)
INNER_LIMITS = [
    ("experiments/store", ("bandit", "experiments.errors", "experiments.store")),
]
# Folders whose modules may not import these dotted prefixes
INNER_FORBIDDEN = [
    ("web", ("web.cli", "web.dashboard"), {"web/cli", "web/dashboard", "web/__init__.py", "web/__main__.py"}),
]
PROJECT = ("bandit", "experiments", "web")
# Database drivers: only the store may import them, so no driver exception or dialect leaks above it.
DRIVERS = {"sqlite3", "sqlite_utils", "psycopg", "psycopg_pool"}
STORE = "experiments/store"


def imported(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def imported_roots(path: pathlib.Path) -> set[str]:
    return {name.split(".")[0] for name in imported(path)}


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_never_import_upwards(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = imported_roots(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_store_imports_a_database_driver():
    files = [p for package in PROJECT for p in sorted((ROOT / package).rglob("*.py"))]
    assert files
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(STORE + "/"):
            continue
        bad = imported_roots(path) & DRIVERS
        assert not bad, f"{rel} imports {sorted(bad)}: database drivers belong in {STORE}"


@pytest.mark.parametrize("folder,allowed", INNER_LIMITS)
def test_inner_packages_import_only_what_they_may(folder, allowed):
    for path in sorted((ROOT / folder).rglob("*.py")):
        own = {n for n in imported(path) if n.split(".")[0] in PROJECT}
        bad = {n for n in own if not any(under(n, a) for a in allowed)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("folder,forbidden,exempt", INNER_FORBIDDEN)
def test_api_views_never_reach_into_the_cli_or_dashboard(folder, forbidden, exempt):
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if any(rel == e or rel.startswith(e + "/") for e in exempt):
            continue
        bad = {n for n in imported(path) if any(under(n, f) for f in forbidden)}
        assert not bad, f"{rel} imports {sorted(bad)}"


def test_every_package_says_what_it_is_for_and_what_it_may_import():
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        rel = init.relative_to(ROOT)
        if rel.parts[0] not in PROJECT:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{rel} has no docstring"
        if len(rel.parts) > 2:  # a subpackage names its imports
            assert "import" in doc, f"{rel}: say what the package may import"


def test_the_python_client_needs_the_standard_library_only():
    """silent_client ships to shops' servers: nothing of the service, nothing from PyPI."""
    import sys

    files = sorted((ROOT / "silent_client").rglob("*.py"))
    assert files
    for path in files:
        outside = {root for root in imported_roots(path) if root != "silent_client"} - set(sys.stdlib_module_names)
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"
