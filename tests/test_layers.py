"""The layering of docs/ARCHITECTURE.md ("Layers"), checked on the real import graph.

``make lint`` runs the import-linter contracts of pyproject.toml; these tests run them too,
check that every package of ``baat`` sits in a layer, and list the import circles among
modules (imports inside functions and under ``if TYPE_CHECKING:`` count like the others).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Circles kept on purpose, as frozensets of module names, each with its reason in
# docs/ARCHITECTURE.md. None today.
KEPT_ON_PURPOSE: frozenset[frozenset[str]] = frozenset()


def circles(package: str) -> list[list[str]]:
    """The import circles among the modules of ``package``: each strongly connected set of
    two or more modules, sorted (Tarjan's algorithm, iterative)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    return _strongly_connected(modules, edges)


def _strongly_connected(nodes: Iterable[str], edges: dict[str, list[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges.get(target, ()))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_no_import_circle_is_left_among_baat_modules() -> None:
    left = [c for c in circles("baat") if frozenset(c) not in KEPT_ON_PURPOSE]
    assert left == []


def test_a_circle_through_a_function_or_type_checking_import_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "loopy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "leaf.py").write_text("X = 1\n")
    (pkg / "a.py").write_text("from loopy import leaf\n\ndef f():\n    from loopy import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from loopy import c\n"
    )
    (pkg / "c.py").write_text("import loopy.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert circles("loopy") == [["loopy.a", "loopy.b", "loopy.c"]]


def test_every_package_of_baat_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = (c for c in config["contracts"] if c["type"] == "layers")
    named = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    packages = {
        f"baat.{p.stem}"
        for p in (ROOT / "src" / "baat").iterdir()
        if (p / "__init__.py").exists() or (p.suffix == ".py" and not p.name.startswith("_"))
    }
    assert packages == named


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
