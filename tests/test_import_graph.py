"""The package's layering (CLI -> library -> plan -> executor) holds only while no module
imports, even lazily inside a function, one that imports it back: a cycle is how
private helpers leak between layers. This walks every import of every module (ast, at any
depth) and fails on a cycle, naming it."""
import ast
import importlib.util
from pathlib import Path

# the package under test wherever it is installed (the wheel stage has no source tree
# beside the tests): found, not imported
PKG = Path(importlib.util.find_spec("pyruntime").origin).resolve().parent


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph():
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from . import x` imports the module x when there is one
                targets = [mod + "." + a.name if mod + "." + a.name in modules else mod
                           for a in node.names]
            for t in targets:
                # the deepest module of the package the import names
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t != "pyruntime":
                    deps.add(t)
        graph[name] = deps
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_lazy_and_relative_imports():
    g = _graph()
    assert "pyruntime.cli" in g and "pyruntime.cgroups.v1" in g
    # a function-level relative import (api.create -> config)
    assert "pyruntime.config" in g["pyruntime.api"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


# The CLI parses flags, calls the library and prints: any host access of its own (files,
# processes, syscalls) is a decision the library API (and `pyruntime plan`) cannot see.
# cli/__init__.py is the exception: the --log file and the process's exit are the CLI's.
_HOST_MODULES = {"os", "subprocess", "socket", "ctypes", "fcntl", "shutil", "signal",
                 "select", "pathlib", "tempfile", "stat"}


def _host_access(path):
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _HOST_MODULES]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            if (node.module or "").split(".")[0] in _HOST_MODULES:
                found.append(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "open"):
            found.append("open()")
    return found


def test_the_checker_sees_host_access(tmp_path):
    p = tmp_path / "cmd_x.py"
    p.write_text("def run(o, a, g):\n    import subprocess\n    with open(a[0]) as f:\n"
                 "        return f.read()\n")
    assert _host_access(p) == ["subprocess", "open()"]


def test_cli_commands_only_parse_and_call_the_library():
    bad = {p.name: _host_access(p) for p in sorted((PKG / "cli").glob("*.py"))
           if p.name != "__init__.py"}
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}, "CLI modules touching the host themselves: %s" % bad


def test_imports_only_go_down_from_the_cli_and_the_api():
    up = {m: sorted(d for d in deps if d.startswith("pyruntime.cli") or d == "pyruntime.api")
          for m, deps in _graph().items()
          if not m.startswith("pyruntime.cli") and m not in ("pyruntime", "pyruntime.__main__")}
    up = {m: d for m, d in up.items() if d}
    assert up == {}, "library modules importing the CLI or the API: %s" % up
