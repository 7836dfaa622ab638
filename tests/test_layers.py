"""The layers stay clean: domain/ is pure; imports point api → resolvers → readmodel → domain."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Pure, well-kept libraries the domain may use: no I/O, no framework.
DOMAIN_MAY_IMPORT = {"phonenumbers", "email_validator", "babel", "rapidfuzz"}
OUR_PACKAGES = {"api", "domain", "readmodel", "resolvers"}
MAY_IMPORT = {
    "domain": {"domain"},
    "readmodel": {"readmodel", "domain"},
    "resolvers": {"resolvers", "readmodel", "domain"},
    "api": OUR_PACKAGES,
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_of(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    return files


def test_domain_imports_only_the_standard_library_and_pure_libraries() -> None:
    offenders = {}
    for path in modules_of("domain"):
        foreign = {
            name
            for name in imported_top_levels(path)
            if name not in sys.stdlib_module_names
            and name not in DOMAIN_MAY_IMPORT
            and name != "domain"
            and name != "__future__"
        }
        if foreign:
            offenders[str(path.relative_to(ROOT))] = sorted(foreign)
    assert offenders == {}


def test_imports_point_one_way_between_layers() -> None:
    offenders = {}
    for package, allowed in MAY_IMPORT.items():
        for path in modules_of(package):
            wrong = (imported_top_levels(path) & OUR_PACKAGES) - allowed
            if wrong:
                offenders[str(path.relative_to(ROOT))] = sorted(wrong)
    assert offenders == {}


def test_the_layer_check_notices_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import sqlalchemy\nfrom redis.asyncio import Redis\nfrom . import sibling\n")
    assert imported_top_levels(module) == {"sqlalchemy", "redis"}
