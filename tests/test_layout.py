"""The house's rules, checked over the package's source (its AST) and a fresh interpreter.

- no import cycles between brace's modules (imports inside functions count:
  they are cycles that merely wait for their first call);
- no private name crosses a module boundary: not imported (`from m import _x`)
  and not read off another module's objects (`obj._x`, where this module
  defines no `_x`);
- the layers stay in order: primitives -> classification -> recovery -> HTTP integrations -> programs,
  each importing only the layers below it;
- no module over 600 lines and no function over 60 (its docstring aside) without a
  reason written at its top (a `# size: ...` comment);
- `import brace` loads the primitives only: not the recovery layer, nor sqlite3,
  ssl, asyncio, logging or inspect.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "brace"
MODULE_LINES_MAX = 600
FUNCTION_LINES_MAX = 60
SIZE_REASON = "# size:"

# Private names of the standard library's own public protocols (namedtuple, enum, sys).
STDLIB_PRIVATE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_getframe", "_value_", "_name_",
                      "_missing_", "_generate_next_value_"}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs (at import time or in a function): not those for type checkers only."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _imports(other)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _imports(child)


def _base(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _edges(module: str) -> Iterator[tuple[str, str | None]]:
    """(the brace module imported, the name taken from it or None) for each import of `module`."""
    for node in _imports(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None
            continue
        base = _base(module, node)
        if base not in MODULES:
            continue
        for alias in node.names:
            if f"{base}.{alias.name}" in MODULES:
                yield f"{base}.{alias.name}", None
            else:
                yield base, alias.name


GRAPH = {module: {target for target, _ in _edges(module)} for module in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_cycle_check_finds_a_cycle() -> None:
    GRAPH["brace.errors"].add("brace.limiter")  # limiter imports errors: a cycle, for this test only
    try:
        assert any({"brace.errors", "brace.limiter"} <= set(cycle) for cycle in _cycles())
    finally:
        GRAPH["brace.errors"].discard("brace.limiter")


def test_no_private_name_is_imported_across_modules() -> None:
    crossing = [(module, f"{target}.{name}") for module in MODULES for target, name in _edges(module)
                if name is not None and name.startswith("_") and not name.startswith("__")]  # fmt: skip
    assert crossing == []


def _defined_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, getattr(obj, "_name")
    return names


# The hooks one object calls on another, declared once as typing.Protocols: the
# stages Policy composes, and what the compiled bases call on their subclasses.
CONTRACTS = ("brace._stages", "brace._hooks")
DECLARED_HOOKS = {node.name for module in CONTRACTS for node in ast.walk(TREES[module])
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_")}  # fmt: skip


def test_no_private_attribute_is_read_across_modules() -> None:
    """`obj._x` where this module defines no `_x` and no contract declares it: it reaches into
    another module's object."""
    reaching = []
    for module, tree in TREES.items():
        defined = _defined_names(tree) | DECLARED_HOOKS
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and node.attr not in defined and node.attr not in STDLIB_PRIVATE_API):  # fmt: skip
                reaching.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert reaching == []


LAYERS = {  # a module's layer: the first prefix that matches
    "brace._cli": 4,
    "brace.integrations": 3,  # the HTTP clients' adapters: over the recovery layer's events and ids
    "brace.analytics": 3,  # the recovery log's analysis: over the recovery layer's events
    "brace.health": 3,  # health checks: over the recovery layer's healing actions
    "brace.metrics": 3,  # Prometheus and OpenTelemetry: over every primitive and Recovery's record
    "brace.__main__": 4,
    "brace.recovery": 2,
    "brace.testing": 2,  # fakes for the primitives and the recovery layer alike
    "brace.classify": 1,
    # the registry: parts made from configuration, whose retries default to the classifier
    "brace._registry": 1,
    "brace._registry_config": 1,
    "brace._registry_sources": 1,
}
# The old module paths, kept as re-exports of the layer they moved to.
COMPATIBILITY = {"brace.control", "brace.deadletter", "brace.demo", "brace.escalation", "brace.fallback",
                 "brace.healing", "brace.recovery_log", "brace.recovery_stats", "brace.switchboard"}  # fmt: skip


def _layer(module: str) -> int:
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return 0  # the primitives, Policy and their helpers


@pytest.mark.parametrize("module", sorted(set(MODULES) - COMPATIBILITY - {"brace"}))
def test_a_module_imports_only_its_layer_and_those_below(module: str) -> None:
    above = sorted(target for target in GRAPH[module]
                   if target not in COMPATIBILITY and target != "brace" and _layer(target) > _layer(module))  # fmt: skip
    assert above == []


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, its signature included and its docstring not (documentation is no burden)."""
    length = (function.end_lineno or function.lineno) - function.lineno + 1
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        length -= (first.end_lineno or first.lineno) - first.lineno + 1
    return length


def _has_reason(lines: list[str]) -> bool:
    return any(line.strip().startswith(SIZE_REASON) for line in lines)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_fit_in_the_head(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").splitlines()
    if len(lines) > MODULE_LINES_MAX:
        assert _has_reason(lines[:40]), f"{module}: {len(lines)} lines and no '{SIZE_REASON}' at its top"
    for node in ast.walk(TREES[module]):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = _code_lines(node)
            if length > FUNCTION_LINES_MAX:
                top = lines[node.lineno - 1 : node.body[0].lineno + 3]
                assert _has_reason(top), f"{module}:{node.lineno}: {node.name} is {length} lines, no '{SIZE_REASON}'"


def test_import_brace_loads_the_primitives_only() -> None:
    heavy = ("brace.recovery", "brace.classify", "brace._cli", "sqlite3", "ssl", "asyncio", "logging", "inspect",
             "socket", "uuid", "concurrent")  # fmt: skip
    code = f"""
import sys
import brace
limiter = brace.RateLimiter(rate=10, per=1, burst=10)
assert limiter.try_acquire()
print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m.startswith({heavy!r})))
"""
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_recovery_layer_loads_on_first_use() -> None:
    code = """
import sys
import brace
assert "brace.recovery" not in sys.modules
recovery = brace.Recovery()
assert "brace.recovery" in sys.modules and brace.Recovery is type(recovery)
assert brace.control is sys.modules["brace.recovery._control"].control
import brace.control
assert brace.control.force_decision == sys.modules["brace.recovery._control"].control.force_decision
"""
    subprocess.run([sys.executable, "-c", code], check=True)
