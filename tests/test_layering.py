"""The house rules, read from the code with ast: who may import whom, no private imports across
files, no import cycle in the library, and one installed namespace."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# repository folder -> the package it is installed as
PACKAGES = {"tfcf": "tfcf", "models": "tfcf.models", "experiments": "tfcf.experiments"}


def _module_name(path):
    relative = path.relative_to(ROOT)
    package = PACKAGES.get(relative.parts[0], relative.parts[0])
    parts = [package] + list(relative.parts[1:])
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """(imported module, [names]) for every import in the file, function-level ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = here if is_package else here[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.append((module, [alias.name for alias in node.names]))
    return found


def _files(folder):
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "weights" not in p.parts)


def _core_files():
    return [p for p in _files("tfcf")]


def test_the_library_core_never_imports_the_architectures_or_the_experiments():
    bad = [(str(p.relative_to(ROOT)), module) for p in _core_files() for module, _ in _imports(p)
           if module.startswith(("tfcf.models", "tfcf.experiments", "models", "experiments"))]
    assert bad == []


def test_architectures_never_import_the_experiments():
    bad = [(str(p.relative_to(ROOT)), module) for p in _files("models") for module, _ in _imports(p)
           if module.startswith(("tfcf.experiments", "experiments"))]
    assert bad == []


def test_tools_never_import_the_experiments():
    bad = [(str(p.relative_to(ROOT)), module) for p in _files("tools") for module, _ in _imports(p)
           if module.startswith(("tfcf.experiments", "experiments"))]
    assert bad == []


def test_hub_is_a_leaf():
    imported = {module for module, _ in _imports(ROOT / "tfcf" / "hub.py")}
    assert not {m for m in imported if m.startswith("tfcf")}, imported


def test_no_private_name_is_imported_from_another_file():
    bad = []
    for path in _core_files() + _files("models") + _files("experiments") + _files("tools"):
        for module, names in _imports(path):
            if not module.startswith("tfcf"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private or module.rsplit(".", 1)[-1].startswith("_") and \
                    not module.startswith(_module_name(path).rsplit(".", 1)[0]):
                bad.append((str(path.relative_to(ROOT)), module, private))
    assert bad == []


def test_the_library_has_no_import_cycle():
    graph = {}
    for path in _core_files():
        name = _module_name(path)
        graph[name] = {m for m, names in _imports(path) if m.startswith("tfcf")} | {
            f"{m}.{n}" for m, names in _imports(path) if m.startswith("tfcf") for n in names}
    graph = {name: {t for t in targets if t in graph and t != name and t != "tfcf"}
             for name, targets in graph.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_only_tfcf_is_installed_and_a_users_models_folder_breaks_nothing(tmp_path):
    """A user's own models/ and experiments/ packages in the working folder shadow nothing."""
    for name in ("models", "experiments"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package')\n")
        (tmp_path / name / "registry.py").write_text("raise ImportError('the user module')\n")
    snippet = ("import importlib.util as u\n"
               "assert u.find_spec('tfcf.models').origin.endswith('__init__.py')\n"
               "from tfcf.models import registry, face_dcgan\n"
               "from tfcf.experiments import cli\n"
               "print(sorted(registry.committed_models())[0], 'train' in cli.COMMANDS)\n")
    environment = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["began_celeba64_small_faces", "True"]


@pytest.mark.parametrize("name", ["models", "experiments"])
def test_setup_installs_the_folders_inside_the_tfcf_namespace(name):
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    packages = config["options"]["packages"].split()
    assert name not in packages and f"tfcf.{name}" in packages
    assert f"tfcf.{name} = {name}" in config["options"]["package_dir"]
