"""The architecture's rules, read from the imports themselves:

- inference (model files, ``Predictor``) imports neither training, data download, evaluation nor
  the commands, nor torchvision or matplotlib, directly or through another module; a kind of data
  (``kinds/``) imports its reader inside its ``load`` alone, which predicting never calls;
- a model imports nothing of the project but the ``models`` package's own building blocks and
  ``options`` (how it declares its options);
- nothing outside the commands (``cli/``) imports them, and only the commands speak as a command
  (``mnist-train: ...``): the library is usable without them;
- no module imports itself back through a chain of imports (no cycles).
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_classifier"
INFERENCE_MUST_NOT_REACH = tuple(f"mnist_classifier.{m}" for m in (
    "training", "data.mnist", "data.datasets", "data.csv_data", "evaluation", "cli")) + (
    "torchvision", "matplotlib", "sklearn", "tqdm")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, readers: bool = True) -> set[str]:
    """Every module ``path`` imports at module level or inside functions, relative ones resolved;
    without ``readers``, leaving out what a kind's ``load`` imports (the reader of its source)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    skipped = set()
    if not readers and name.startswith("mnist_classifier.kinds"):
        skipped = {id(node) for load in ast.walk(tree) if isinstance(load, ast.FunctionDef) and load.name == "load"
                   for node in ast.walk(load)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base != name:  # `from . import cnn` in a package's __init__ names its submodules
                found.add(base)
            # `from . import cnn` imports a submodule, not a name.
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").exists())
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
PREDICTING_GRAPH = {module_name(p): imports_of(p, readers=False) for p in PACKAGE.rglob("*.py")}


def project_imports(module: str) -> set[str]:
    return {m for m in GRAPH.get(module, ()) if m in GRAPH}


def reachable(module: str, graph: dict = GRAPH) -> set[str]:
    """Everything importing ``module`` loads: its imports, theirs, and each one's parent packages."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for target in graph.get(current, ()):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                parent = ".".join(parts[:i])
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
    return seen


def test_the_graph_sees_the_real_imports():
    assert "mnist_classifier.models.mlp" in project_imports("mnist_classifier.models.cnn")
    assert "mnist_classifier.training.trainer" in reachable("mnist_classifier.cli.train")
    assert "torchvision" in reachable("mnist_classifier.data.datasets")
    # A kind's reader is a real import, left out only of what predicting reaches.
    assert "mnist_classifier.data.csv_data" in GRAPH["mnist_classifier.kinds.tables"]
    assert "mnist_classifier.data.csv_data" not in PREDICTING_GRAPH["mnist_classifier.kinds.tables"]


# torchvision's architectures need torchvision to be built: that module imports it inside the
# constructor, so that inference with any other family never loads it (checked below and at run time).
TORCHVISION_FAMILIES = "mnist_classifier.models.torchvision_models"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("mnist_classifier.inference")))
def test_inference_reaches_no_training_download_or_plotting_code(module, monkeypatch):
    monkeypatch.setitem(PREDICTING_GRAPH, TORCHVISION_FAMILIES, GRAPH[TORCHVISION_FAMILIES] - {"torchvision"})
    forbidden = {m for m in reachable(module, PREDICTING_GRAPH) if m.startswith(INFERENCE_MUST_NOT_REACH)}
    assert not forbidden, f"{module} imports {sorted(forbidden)}"


def test_torchvision_families_import_torchvision_only_when_one_is_built():
    tree = ast.parse((PACKAGE / "models" / "torchvision_models.py").read_text())
    at_top = {alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
              for alias in node.names} | {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert "torchvision" in GRAPH[TORCHVISION_FAMILIES] and not any(str(m).startswith("torchvision") for m in at_top)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("mnist_classifier.models")))
def test_models_import_only_their_own_building_blocks(module):
    allowed = ("mnist_classifier.models", "mnist_classifier.options")
    outside = {m for m in project_imports(module) if not m.startswith(allowed)}
    assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith("mnist_classifier.cli")))
def test_only_the_commands_import_the_commands(module):
    commands = {m for m in project_imports(module) if m.startswith("mnist_classifier.cli")}
    assert not commands, f"{module} imports {sorted(commands)}"


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.parts),
                         ids=lambda p: module_name(p))
def test_only_the_commands_print_under_a_commands_name(path):
    assert not re.search(r"[\"']mnist-(train|evaluate|predict|export|serve): ", path.read_text()), path


def test_no_import_cycles():
    def visit(module, path):
        for target in project_imports(module):
            if target in path:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            visit(target, path + [target])

    for module in GRAPH:
        visit(module, [module])


def test_importing_the_predictor_loads_no_training_code():
    code = ("import sys; from mnist_classifier import Predictor; "
            "print('\\n'.join(m for m in sys.modules if m.startswith(('mnist_classifier', 'torchvision', "
            "'matplotlib', 'sklearn'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "mnist_classifier.inference.predictor" in loaded
    # (tqdm is left out here: torch itself imports it; the static test above keeps ours out.)
    assert not [m for m in loaded if m.startswith(INFERENCE_MUST_NOT_REACH[:-1])], loaded


def test_the_seeds_names_stay_importable_from_the_package():
    import mnist_classifier

    for name in ("Block", "ImageClassifier", "Trainer", "get_hidden_sizes", "split_data", "load_mnist",
                 "load_model", "Predictor", "ConvClassifier", "SequenceClassifier"):
        assert getattr(mnist_classifier, name).__name__ == name


MAX_FUNCTION_LINES = 50  # a function a reader takes in at once


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = [f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


TRAINER = PACKAGE / "training" / "trainer.py"


def names_before_the_epoch_loop(path: Path) -> list[str]:
    """What a reader of ``path`` meets before its ``for epoch`` line: each name imported or defined
    at module level, and each method of a class (dunders aside), above that line."""
    tree = ast.parse(path.read_text())
    loop = next(node.lineno for node in ast.walk(tree) if isinstance(node, ast.For)
                and isinstance(node.target, ast.Name) and node.target.id == "epoch")
    names = []
    for node in tree.body:
        if node.lineno >= loop:
            break
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names += [(alias.asname or alias.name).split(".")[0] for alias in node.names]
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        if isinstance(node, ast.ClassDef):
            names += [m.name for m in node.body if isinstance(m, ast.FunctionDef) and m.lineno < loop
                      and not m.name.startswith("__")]
    return names


def test_the_trainer_reads_as_the_seeds_did():
    # The issue "one way through": at most 250 lines, at most 10 names before the epoch loop, and
    # the distributed run behind a strategy object, never a branch of the loop.
    text = TRAINER.read_text()
    assert len(text.splitlines()) <= 250
    names = names_before_the_epoch_loop(TRAINER)
    assert len(names) <= 10, names
    assert "parallel" not in text and "world_size" not in text
    assert "is_floating_point" not in text and "dtype" not in text  # the task is given, never guessed


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve", "export"])
def test_every_commands_flags_are_made_from_its_options(command):
    import importlib

    from mnist_classifier.options import options_of

    module = importlib.import_module(f"mnist_classifier.cli.{command}")
    actions = module.build_parser()._actions
    flags = {action.dest for action in actions if action.option_strings and action.dest != "help"}
    options = next(value for name, value in vars(module).items()  # the one the command defines
                   if name.endswith("Options") and getattr(value, "__module__", None) == module.__name__)
    assert flags == set(options_of(options))


def test_the_csv_reading_flags_are_declared_once():
    from mnist_classifier.cli.predict import PredictOptions
    from mnist_classifier.kinds.tables import CSV_READING
    from mnist_classifier.options import options_of
    from mnist_classifier.training.config import TRAIN_OPTIONS

    for name, words in CSV_READING.items():
        assert TRAIN_OPTIONS[name].help.endswith(words["help"])
        assert options_of(PredictOptions)[name].help.endswith(words["help"])
        assert TRAIN_OPTIONS[name].spec.choices == options_of(PredictOptions)[name].spec.choices
