"""The optional extras (core/extras.py): the import -> extra table agrees with pyproject.toml and the code, and
each extra's missing dependency ends its command with one line naming the `pip install 'emoshift[...]'` that
fixes it (exit 2), simulated by a meta-path blocker in a subprocess."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from emoshift.core.extras import EXTRAS, MissingExtraError, extra_of, needs, require

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "emoshift"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# the import names of the core dependencies (pyproject.toml `dependencies`)
CORE = {"numpy", "scipy", "soundfile", "soxr", "pydantic", "yaml", "typer", "rich", "onnxruntime"}


def _requirement_name(req: str) -> str:
    for sep in "<>=!~[;( ":
        req = req.split(sep)[0]
    return req.lower()


def test_extras_table_matches_pyproject() -> None:
    optional = PYPROJECT["optional-dependencies"]
    assert set(EXTRAS) == set(optional) - {"all", "dev"}
    assert optional["all"] == [f"emoshift[{','.join(EXTRAS)}]"]  # every extra, in the table's order
    core = {_requirement_name(r) for r in PYPROJECT["dependencies"]}
    assert core == {"numpy", "scipy", "soundfile", "soxr", "pydantic", "pyyaml", "typer", "rich", "onnxruntime"}
    assert not core & {"torch", "lightning", "transformers"}  # the core install has no deep-learning framework
    for extra, modules in EXTRAS.items():  # an extra lists a requirement for each import it provides
        names = {_requirement_name(r) for r in optional[extra]}
        for module in modules:
            dist = {"sklearn": "scikit-learn", "python_multipart": "python-multipart", "mlflow": "mlflow-skinny",
                    "silero_vad": "silero-vad", "optuna_integration": "optuna-integration",
                    "starlette": "fastapi", "huggingface_hub": "transformers", "pandas": "audformat",
                    "onnx_ir": "onnx-ir"}.get(module, module)
            assert dist in names, f"[{extra}] provides {module} but pyproject.toml does not list {dist}"


def _third_party_imports() -> dict[str, set[str]]:
    """top-level module -> the files of src/emoshift that import it (function-level imports included)."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "emoshift":
                    found.setdefault(top, set()).add(str(path.relative_to(SRC)))
    return found


def test_every_import_is_core_or_an_extra() -> None:
    """A new dependency must be declared: in the core install, or in an extra that the table names."""
    unknown = {m: sorted(f) for m, f in _third_party_imports().items() if m not in CORE and extra_of(m) is None}
    assert not unknown, f"imports neither in the core dependencies nor in an extra: {unknown}"


def test_needs_names_the_extra_and_keeps_other_import_errors() -> None:
    with pytest.raises(MissingExtraError) as info, needs("emoshift train"):
        raise ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")
    assert str(info.value) == (
        "emoshift train needs the 'train' extra (torch is not installed): pip install 'emoshift[train]'"
    )
    assert info.value.exit_code == 2
    with pytest.raises(ModuleNotFoundError), needs("emoshift train"):  # not an extra's module: a bug
        raise ModuleNotFoundError("No module named 'emoshift.nonexistent'", name="emoshift.nonexistent")
    require("train")  # the dev environment holds every extra


BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker:  # as if these packages were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
sys.argv = ["emoshift", *sys.argv[2:]]
from emoshift.cli import main
main()
"""
LIBRARY = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from emoshift.core.errors import EmoshiftError
try:
    exec(sys.argv[2])
except EmoshiftError as e:
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(e.exit_code)
"""
# extra -> (how to reach it: "cli" arguments or "py" code, what the line says needs the extra; the module it
# names is whichever of the extra's the code imports first). Each extra that provides modules has a case (test_every_extra_has_a_case): the command a user of the core install would run.
CASES: dict[str, list[tuple[str, str, str]]] = {
    "train": [
        ("cli", "train --corpus ravdess={tmp} -o {tmp}/run", "emoshift train"),
        ("cli", "export {tmp}/run", "emoshift export"),
        ("cli", "features ravdess {tmp} --cache {tmp}/cache", "emoshift features"),
        ("py", "import emoshift; emoshift.train", "emoshift.train"),
    ],
    "serve": [("cli", "serve {tmp}/run", "emoshift serve")],
    "vad": [("cli", "predict {tmp}/run {tmp}/clip.wav --vad", "--vad")],
    "plots": [("cli", "predict {tmp}/run {tmp}/clip.wav --no-vad-check --plot {tmp}/plots", "--plot")],
    "track": [("py", "from emoshift.config import load_config; from emoshift.core.rundir import RunDir; "
                     "from emoshift.training.tracking import start_tracking; "
                     "start_tracking(load_config(None, ['tracking.backend=mlflow']), RunDir.of('{tmp}/run'))",
               "tracking.backend: mlflow")],
    "tune": [("cli", "tune --space {tmp}/space.yaml -n 1", "emoshift tune")],
    "slurm": [("py", "from emoshift.study.launch import LaunchOptions, make_backend; "
                     "make_backend(LaunchOptions.build(jobs=None, launcher='local', slurm=None), "
                     "__import__('pathlib').Path('{tmp}'))",
               "--launcher local")],
    # a corpus source's library (tests/corpora/test_sources.py runs `emoshift train` on one in-process)
    **{kind: [("py", f"from emoshift.corpora import scan_source; scan_source('mine', '{kind}:{{tmp}}')",
               f"a {kind} corpus source")] for kind in ("hf", "lhotse", "audformat")},
}


def test_every_extra_has_a_case() -> None:
    assert {extra for extra, modules in EXTRAS.items() if modules} == set(CASES)


@pytest.mark.parametrize(("extra", "case"), [(e, c) for e, cases in CASES.items() for c in cases],
                         ids=lambda x: x if isinstance(x, str) else x[1].split()[0][:24])
def test_missing_extra_is_one_line(extra: str, case: tuple[str, str, str], tmp_path: Path) -> None:
    kind, what, expected = case
    what = what.replace("{tmp}", str(tmp_path))
    code, args = (BLOCKER, what.split()) if kind == "cli" else (LIBRARY, [what])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, ",".join(EXTRAS[extra]), *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    pattern = rf"error: {re.escape(expected)} needs the '{extra}' extra \((\w+) is not installed\): pip install 'emoshift\[{extra}\]'"
    assert len(lines) == 1 and (m := re.fullmatch(pattern, lines[0])), proc.stderr[-3000:]
    assert m.group(1) in EXTRAS[extra]


def test_an_imported_package_without_a_spec_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """optuna_integration replaces its module with one whose ``__spec__`` is None, on which ``find_spec`` raises:
    once imported, it must still count as installed (tune refused to start after a tune in the same process)."""
    import types

    from emoshift.core.extras import installed

    fake = types.ModuleType("emoshift_fake_lazy")
    fake.__spec__ = None
    monkeypatch.setitem(sys.modules, "emoshift_fake_lazy", fake)
    assert installed("emoshift_fake_lazy")
    assert not installed("emoshift_no_such_module")
