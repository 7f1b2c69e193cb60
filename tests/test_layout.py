"""What may import what (README "Architecture"): a newcomer can trust the layout because this test does.

Every import counts, a function-local one too: hiding an import inside a function hides a cycle from the
reader but not from Python. Imports under `if TYPE_CHECKING:` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests import services


PACKAGES = ("accounts", "avtrz", "mcpserver", "workspaces")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(services.ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_names(tree: ast.AST, package: str) -> set[str]:
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                pending.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in child.names)
            pending.append(child)
    return names


def _import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (migrations and management commands left out)."""
    paths = [
        path
        for package in PACKAGES
        for path in (services.ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and "management" not in path.parts
    ]
    modules = {_module_name(path): path for path in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = _imported_names(ast.parse(path.read_text(), str(path)), package)
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def _owner(module: str) -> str:
    """The part of the project a module belongs to: an app, a package of `avtrz`, or the wiring."""
    parts = module.split(".")
    if parts[0] == "avtrz" and len(parts) > 1 and parts[1] in ("avatars", "lib", "site"):
        return ".".join(parts[:2])
    return "avtrz" if parts[0] == "avtrz" else parts[0]


def _violations(rule) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in _import_graph().items()
        for target in targets
        if rule(_owner(module), _owner(target))
    )


def test_the_shared_building_blocks_import_nothing_of_the_product():
    assert _violations(lambda owner, target: owner == "avtrz.lib" and target != "avtrz.lib") == []


def test_only_the_asgi_wiring_imports_the_mcp_server():
    graph = _import_graph()
    importers = {module for module, targets in graph.items() for target in targets if _owner(target) == "mcpserver"}
    assert {module for module in importers if _owner(module) != "mcpserver"} == {"avtrz.asgi"}


def test_workspaces_and_accounts_never_import_the_avatar_engine_or_the_mcp_server():
    assert (
        _violations(
            lambda owner, target: owner in ("workspaces", "accounts") and target in ("avtrz.avatars", "mcpserver")
        )
        == []
    )


def test_no_app_imports_the_site_pages():
    assert _violations(lambda owner, target: owner != "avtrz" and target == "avtrz.site") == []


def test_no_two_modules_import_each_other_even_from_inside_a_function():
    graph = _import_graph()
    cycles = []
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []
