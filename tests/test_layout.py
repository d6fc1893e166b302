"""The package layout's promises: no import cycles between modules or packages (lazy imports
included), no module or tool over 400 lines, gin only in jaxprompt/cli/, torch/seqio/TensorFlow
never imported at module level outside the modules that exist to use them."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxprompt"


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: pathlib.Path, modules, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, modules, False) if m in modules and m != name}
        for name, path in modules.items()
    }


def _package(module: str) -> str:
    """jaxprompt.evaluation.bank -> jaxprompt.evaluation (a top-level module is its own)."""
    return ".".join(module.split(".")[:2])


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(trail + [nxt])
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_import_cycles_between_modules():
    _assert_acyclic(_module_graph())


def test_no_import_cycles_between_packages():
    """Each subpackage counts as one node: checkpoints, prompts, evaluation, training,
    serving and cli import one way (lazy imports included)."""
    packages: dict[str, set[str]] = {}
    for module, imported in _module_graph().items():
        node = packages.setdefault(_package(module), set())
        node.update(_package(m) for m in imported if _package(m) != _package(module))
    assert {
        "jaxprompt.checkpoints",
        "jaxprompt.prompts",
        "jaxprompt.evaluation",
        "jaxprompt.training",
    } <= set(packages)
    _assert_acyclic(packages)


def test_modules_are_small_and_gin_stays_at_the_edge():
    modules = _modules()
    for path in (PACKAGE.parent / "tools").glob("*.py"):  # the tools obey the same cap
        assert len(path.read_text().splitlines()) <= 400, f"{path} is over 400 lines"
    for name, path in modules.items():
        assert len(path.read_text().splitlines()) <= 400, f"{path} is over 400 lines"
        imports = _imports(path, modules, False)
        if not name.startswith("jaxprompt.cli"):
            assert "gin" not in imports, f"{path} imports gin (only jaxprompt/cli/ may)"
        heavy = {"torch", "seqio", "tensorflow", "transformers", "peft"}
        assert not heavy & {m.split(".")[0] for m in _imports(path, modules, True)}, (
            f"{path} imports an optional extra at module level"
        )


def test_importing_jaxprompt_does_not_load_jax_and_public_names_resolve():
    """The `jaxprompt` command sets its process up (host_memory's re-exec) before JAX loads:
    `import jaxprompt` and `jaxprompt.cli` must stay light; the public names load on use."""
    import subprocess
    import sys

    probe = (
        "import sys, jaxprompt, jaxprompt.cli, jaxprompt.host_memory; "
        "print(sorted(m for m in ('jax', 'flax', 'numpy', 'seqio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    ).stdout.strip()
    assert out == "[]", f"importing jaxprompt loaded {out}"

    import jaxprompt
    from jaxprompt.models.t5 import T5

    assert jaxprompt.T5 is T5
    for name in jaxprompt.__all__:
        assert getattr(jaxprompt, name) is not None
    try:
        jaxprompt.no_such_name
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("jaxprompt.no_such_name did not raise AttributeError")
