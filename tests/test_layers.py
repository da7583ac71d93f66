"""The import graph follows the layer order of the architecture (docs/architecture.md): every import
points down, and no module reaches itself through its imports (lazy imports included)."""
import ast
from pathlib import Path

import jemkit

PACKAGE = Path(jemkit.__file__).parent

# Lowest first; a part imports only parts before it in this list (or itself).
LAYERS = [
    ("utils", "memory", "images", "config"),  # small helpers, typed configs
    ("energy", "model"),  # the energy contract; Classifier and ScoreModel (what load returns)
    ("nets", "data", "presets"),  # backbones; datasets
    ("checkpoint",),  # checkpoints + load for every model kind (builds the backbone it records)
    ("sampling",),  # stateless samplers, buffer, inits, samplers bound to configs/records
    ("objectives",),  # pure losses
    ("training",),  # the loop and what it composes
    ("evaluation",),  # one module per suite; no training import
    ("report", "compare", "draw"),  # eval/run directories -> pages, figures; sample pictures
    ("demo", "bench"),  # whole pipelines; the optional benchmarking lab
    ("cli", "__main__"),  # parse and dispatch
]
RANK = {part: i for i, part in enumerate(p for layer in LAYERS for p in layer)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every jemkit module ``path`` imports, at module level or inside functions."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("jemkit"):
                submodules = {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
                found.update(submodules or {target})
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jemkit"))
    return {m for m in found if _is_module(m)}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def part(mod: str) -> str:
    bits = mod.split(".")
    return bits[1] if len(bits) > 1 else ""


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_part_has_a_layer():
    parts = {part(m) for m in GRAPH} - {""}
    assert parts <= set(RANK), f"parts without a layer: {sorted(parts - set(RANK))}"


def test_imports_point_down():
    up = [f"{src} -> {dst}" for src, dsts in GRAPH.items() for dst in dsts
          if part(src) and part(dst) and part(src) != part(dst) and RANK[part(dst)] >= RANK[part(src)]]
    assert not up, "imports that do not point down the layers:\n" + "\n".join(sorted(up))


def test_no_module_imports_itself_in_a_circle():
    def reaches(start, goal, seen):
        for nxt in GRAPH.get(start, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, goal, seen):
                    return True
        return False

    # a package's __init__ importing its own modules is how packages are built, not a cycle
    cycles = [m for m in GRAPH if reaches(m, m, set()) and not all(d.startswith(m + ".") for d in GRAPH[m])]
    assert not cycles, f"modules in an import cycle: {sorted(cycles)}"
