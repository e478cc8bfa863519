"""The checkout, an editable install and the wheel import ra-guard the same way.

``integrations/`` and ``policies/`` are top-level folders of the repository and reach users as
``ra_guard.integrations`` and ``ra_guard/policies``. Each module must load under that one name:
no top-level ``integrations`` package, no ``ra_guard.tests`` or ``ra_guard.benchmarks``, and
one ``ChatModelJudge`` class whichever path imports it. Every check runs in a fresh interpreter
from a directory outside the repository, so the current directory cannot stand in for an install.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "policies").glob("*.yaml"))

# Prints what a user of the installed package would see; run with the cwd outside the repository.
PROBE = r"""
import importlib, json, os, sys
import ra_guard
import ra_guard.integrations.langchain.judge as judge
from ra_guard.integrations.langchain import ChatModelJudge

def importable(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        return False
    return True

# Every loaded module file under ra_guard/ or integrations/ and the names it was loaded as.
names = {}
for name, module in list(sys.modules.items()):
    file = getattr(module, "__file__", None)
    if file and ("ra_guard" in name or "integrations" in name):
        names.setdefault(os.path.realpath(file), []).append(name)
print(json.dumps({
    "judge_file": os.path.realpath(judge.__file__),
    "same_class": ChatModelJudge is judge.ChatModelJudge,
    "policies": ra_guard.list_policies(),
    "concise": ra_guard.load_policy("concise").name,
    "integrations": importable("integrations"),
    "ra_guard.tests": importable("ra_guard.tests"),
    "ra_guard.benchmarks": importable("ra_guard.benchmarks"),
    "twice": {f: n for f, n in names.items() if len(n) > 1},
}))
"""


def _probe(python: Path | str, cwd: Path, pythonpath: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    result = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout)
    return found


def _assert_one_name_each(found: dict[str, object], *, root_on_path: bool = False) -> None:
    assert found["same_class"] is True
    assert found["twice"] == {}
    # With the repository root itself on sys.path (PYTHONPATH=., or cwd there) its folders are
    # top-level packages by Python's rules; an install must not put them there.
    assert found["integrations"] is root_on_path
    assert found["ra_guard.tests"] is False
    assert found["ra_guard.benchmarks"] is False
    assert found["policies"] == SHIPPED
    assert found["concise"] == "concise"


def test_checkout_on_pythonpath_imports_each_module_once(tmp_path: Path) -> None:
    """A checkout on PYTHONPATH (no install) sees what the wheel ships, under the wheel's names."""
    found = _probe(sys.executable, tmp_path, pythonpath=str(ROOT))
    _assert_one_name_each(found, root_on_path=True)
    assert found["judge_file"] == str((ROOT / "integrations" / "langchain" / "judge.py").resolve())


def test_this_session_loads_integrations_under_one_name() -> None:
    """Pytest's own collection (doctests included) must not import ``integrations`` top-level."""
    import ra_guard.integrations.langchain.judge as judge

    assert judge.__name__ == "ra_guard.integrations.langchain.judge"
    assert not [name for name in sys.modules if name == "integrations" or name.startswith("integrations.")]


def _fresh_venv(tmp_path: Path) -> Path:
    """A venv that borrows this interpreter's third-party packages, but none of ra-guard itself.

    The dependencies (pydantic, langchain...) come from a folder of links to this interpreter's
    site-packages (and folders its .pth files add, checkouts aside) minus every ``ra_guard``
    entry, so only what the test installs provides ra_guard.
    """
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    borrowed = tmp_path / "borrowed"
    borrowed.mkdir()
    sources = [Path(p) for p in site.getsitepackages()]
    # Folders that .pth files add (a venv that borrows in turn), but no project checkout.
    for pth in [f for d in list(sources) if d.is_dir() for f in d.glob("*.pth")]:
        for line in pth.read_text().splitlines():
            folder = Path(line.strip())
            checkout = (folder / "pyproject.toml").exists()
            if line.strip() and not line.startswith(("import", "#")) and folder.is_dir() and not checkout:
                sources.append(folder)
    for source in sources:
        for entry in source.iterdir() if source.is_dir() else ():
            own = entry.name.startswith(("ra_guard", "_ra_guard", "__editable__", "_editable_impl_ra_guard"))
            if not own and entry.suffix != ".pth" and not (borrowed / entry.name).exists():
                (borrowed / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Named to load before the editable install's .pth, whose import hook needs `editables`.
    (Path(purelib) / "_borrowed.pth").write_text(f"{borrowed}\n")
    return python


def _pip_install(python: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        check=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_editable_install_imports_like_the_wheel(tmp_path: Path) -> None:
    """``pip install -e`` maps ``ra_guard`` alone: the repository root is not on sys.path."""
    python = _fresh_venv(tmp_path)
    # --no-deps keeps the borrowed dependencies; the editable hook needs `editables` at run time.
    _pip_install(python, "--no-deps", "-e", str(ROOT))
    _pip_install(python, "editables")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    found = _probe(python, cwd)
    _assert_one_name_each(found)
    # Edits in the checkout are live: the judge is the repository's file, not a copy.
    assert found["judge_file"] == str((ROOT / "integrations" / "langchain" / "judge.py").resolve())


@pytest.mark.slow
def test_wheel_imports_each_module_once(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("ra_guard-*.whl")
    python = _fresh_venv(tmp_path)
    _pip_install(python, "--no-deps", str(wheel))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    found = _probe(python, cwd)
    _assert_one_name_each(found)
    assert "/site-packages/ra_guard/integrations/langchain/judge.py" in str(found["judge_file"])
