"""A release build (sdist, then the wheel from it), installed in a fresh venv, carries policies and integrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist and the wheel built from it, as `python -m build` makes them for a release."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (built,) = dist.glob("ra_guard-*.whl")
    return built


@pytest.mark.slow
def test_sdist_carries_the_linked_folders_as_files(dist: Path) -> None:
    """``ra_guard/integrations`` and ``ra_guard/policies`` are links in the checkout, files in the sdist."""
    (sdist,) = dist.glob("ra_guard-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
    linked = [n for n in members if n.startswith(("ra_guard/integrations/", "ra_guard/policies/"))]
    assert "ra_guard/integrations/langchain/judge.py" in linked
    assert sorted(Path(n).name for n in linked if n.startswith("ra_guard/policies/")) == sorted(
        p.name for p in (ROOT / "policies").glob("*.yaml")
    )
    assert all(members[n].isfile() for n in linked)


@pytest.mark.slow
def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "policies").glob("*.yaml"))
    assert sorted(Path(n).name for n in names if n.startswith("ra_guard/policies/")) == shipped
    assert "ra_guard/integrations/__init__.py" in names
    assert "ra_guard/data/rewardanything_system_prompt.txt" in names
    assert "ra_guard/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "integrations/", "policies/"))]
    # Every module of the checkout ships, the linked integrations and the subpackages (local, testing) included.
    # (os.walk with followlinks: pathlib's "**" does not enter the linked folders before Python 3.13.)
    modules = {
        f"ra_guard/{(Path(folder) / name).relative_to(ROOT / 'ra_guard').as_posix()}"
        for folder, _, files in os.walk(ROOT / "ra_guard", followlinks=True)
        for name in files
        if name.endswith(".py")
    }
    assert "ra_guard/integrations/langchain/middleware.py" in modules
    assert modules - set(names) == set()


@pytest.mark.slow
def test_fresh_venv_finds_policies_and_integrations(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    probe = (
        "import json, ra_guard, ra_guard.integrations as i;"
        "from ra_guard.judges.format import system_prompt;"
        "print(json.dumps({'policies': ra_guard.list_policies(), 'integrations': i.__file__,"
        " 'concise': ra_guard.load_policy('concise').name, 'prompt': len(system_prompt())}))"
    )
    # The fresh venv must see the wheel alone, not a checkout on an inherited PYTHONPATH.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=clean
    )
    found = json.loads(result.stdout)
    assert found["policies"] == sorted(p.stem for p in (ROOT / "policies").glob("*.yaml"))
    assert found["concise"] == "concise"
    assert found["prompt"] == 1121
    assert "site-packages/ra_guard/integrations" in found["integrations"]
