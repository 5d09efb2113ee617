"""The shape the storage issue (#14) set for ``zart/``: modules a reader can hold in their head,
and no import cycle inside the runtime, counting imports made only for type checking."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

import zart

PACKAGE = Path(zart.__file__).parent
LIMIT = 600


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert sizes, "found no module to measure"
    assert {name: size for name, size in sizes.items() if size > LIMIT} == {}


@pytest.mark.parametrize("package", ["zart.runtime", "zart.repositories", "zart.worker"])
def test_no_import_cycle_inside(package: str) -> None:
    graph = grimp.build_graph("zart", exclude_type_checking_imports=False)
    modules = {m for m in graph.modules if m.startswith(package + ".")}
    assert modules, f"no modules under {package}"
    cycles = sorted(
        f"{module} -> {imported} -> ... -> {module}"
        for module in modules
        for imported in graph.find_modules_directly_imported_by(module) & modules
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert cycles == []
