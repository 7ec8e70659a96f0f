"""The stubs: type checkers see every public name, `mypy --strict` passes on a user's file
calling every op and catches a misspelt keyword, and the stubs match the runtime."""
import ast
import importlib.util
import inspect
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import ndpool
from ndpool import nn

PACKAGE = Path(ndpool.__file__).parent
ROOT = Path(__file__).resolve().parents[1]
TYPING = Path(__file__).parent / "typing"
STUBS = ("__init__.pyi", "functional/__init__.pyi", "nn.pyi")


def stub_tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text())


def stub_functions(tree: ast.Module) -> dict:
    """name -> its defs in the stub (one per overload), at module or class level."""
    found: dict = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found.setdefault(f"{node.name}.{item.name}", []).append(item)
    return found


def stub_parameters(node: ast.FunctionDef) -> list:
    """(name, kind, default) of a stub def, as inspect names them (``self`` dropped)."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults]
    out = [(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, d)
           for a, d in zip(positional, defaults)]
    if args.vararg:
        out.append((args.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    out += [(a.arg, inspect.Parameter.KEYWORD_ONLY,
             inspect.Parameter.empty if d is None else ast.literal_eval(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        out.append((args.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return [p for p in out if p[0] != "self"]


def runtime_parameters(signature: inspect.Signature) -> list:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def assert_same(name: str, defs: list, runtime: list):
    """The last def (the general overload) is the runtime signature exactly; the others
    narrow it (keyword-only, or required) but keep every name in the runtime's order."""
    assert defs, f"{name} has no stub"
    assert stub_parameters(defs[-1]) == runtime, name
    for narrower in defs[:-1]:
        assert [p[0] for p in stub_parameters(narrower)] == [p[0] for p in runtime], name


FUNCTIONS = {**stub_functions(stub_tree("functional/__init__.pyi")),
             **stub_functions(stub_tree("__init__.pyi"))}
LAYERS = stub_functions(stub_tree("nn.pyi"))


@pytest.mark.parametrize("name", ndpool.__all__)
def test_every_public_name_has_a_stub_with_its_runtime_signature(name):
    value = getattr(ndpool, name)
    if name == "nn":
        return    # its layers are checked below
    if name == "block_threads":   # a context manager function with a `current` attribute
        assert_same(name, FUNCTIONS["_BlockThreads.__call__"],
                    runtime_parameters(inspect.signature(value)))
        return
    runtime = getattr(value, "_ndpool_signature", None) or inspect.signature(value)
    if name == "vjp":   # see the stub: only the overloads with wrt can spell it
        assert_vjp(FUNCTIONS["vjp"], runtime_parameters(runtime))
        return
    assert_same(name, FUNCTIONS.get(name, []), runtime_parameters(runtime))


def assert_vjp(defs: list, runtime: list):
    """vjp's overloads: those with ``wrt`` have the runtime's names and kinds (``wrt``
    required in them), and the last, the ParamSpec one, has them all but ``wrt``, which
    PEP 612 allows no keyword-only argument to sit beside."""
    names = [(p[0], p[1]) for p in runtime]
    *with_wrt, last = defs
    assert with_wrt
    for node in with_wrt:
        assert [(p[0], p[1]) for p in stub_parameters(node)] == names
    assert [(p[0], p[1]) for p in stub_parameters(last)] == [n for n in names if n[0] != "wrt"]


@pytest.mark.parametrize("name", nn.__all__)
def test_every_layer_has_a_stub_with_its_constructor_arguments(name):
    cls = getattr(nn, name)
    runtime = [(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default)
               for arg, default in cls._signature]
    assert_same(name, LAYERS.get(f"{name}.__init__", []), runtime)
    forward = runtime_parameters(inspect.signature(cls.forward))[1:]   # less self
    if name.startswith("MaxUnpool"):
        assert_same(f"{name}.forward", LAYERS[f"{name}.forward"], forward)


def test_stubs_are_what_the_script_writes():
    spec = importlib.util.spec_from_file_location("make_stubs", ROOT / "scripts/make_stubs.py")
    make_stubs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_stubs)
    for path, make in make_stubs.STUBS.items():
        assert (ROOT / path).read_text() == make(), f"run scripts/make_stubs.py ({path})"


def test_py_typed_ships_beside_the_stubs():
    assert (PACKAGE / "py.typed").is_file()
    for name in STUBS:
        assert (PACKAGE / name).is_file()


def test_layers_are_generic_at_run_time_as_in_the_stubs():
    from typing import Any

    assert nn.MaxPool2d[Any].__origin__ is nn.MaxPool2d


def test_user_file_names_every_public_op_and_layer():
    text = (TYPING / "uses_every_op.py").read_text()
    used = set(re.findall(r"ndpool\.(?:nn\.)?(\w+)", text))
    missing = (set(ndpool.__all__) | set(nn.__all__)) - used
    assert not missing, f"tests/typing/uses_every_op.py does not call {sorted(missing)}"


def test_user_file_runs():
    pytest.importorskip("zarr")      # it writes a pyramid
    runpy.run_path(str(TYPING / "uses_every_op.py"))


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    """One `mypy --strict` run over both user files (a fresh cache: about 10 s)."""
    pytest.importorskip("mypy")
    cache = tmp_path_factory.mktemp("mypy_cache")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
         "--no-error-summary", "--hide-error-context", "--no-pretty",
         str(TYPING / "uses_every_op.py"), str(TYPING / "misspelt_keyword.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, cwd=ROOT,
        env=_mypy_environment())
    return done.stdout


def _mypy_environment():
    """This ndpool's stubs for mypy: a development tree's src/ through MYPYPATH; an
    installed package (CI) is found by mypy itself, which refuses site-packages there."""
    if PACKAGE.parent.name in ("site-packages", "dist-packages"):
        return dict(os.environ)
    return {**os.environ, "MYPYPATH": str(PACKAGE.parent)}


def test_mypy_strict_passes_on_a_file_calling_every_op(mypy_report):
    """Every line mypy prints is an error of the misspelt file: none of the user file,
    and no refusal to run (which would print neither)."""
    lines = [line for line in mypy_report.splitlines() if line.strip()]
    assert lines, "mypy printed nothing: the misspelt file should give errors"
    problems = [line for line in lines if "misspelt_keyword.py:" not in line]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line", [7, 8, 9], ids=["op", "vjp", "layer"])
def test_mypy_reports_a_misspelt_keyword(mypy_report, line):
    errors = [text for text in mypy_report.splitlines()
              if f"misspelt_keyword.py:{line}: error:" in text]
    assert any('Unexpected keyword argument "strid"' in text for text in errors), mypy_report
