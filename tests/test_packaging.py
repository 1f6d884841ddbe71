"""The package installs whole: every Python package is in the wheel, and the recipes and catalogs ship
inside it, found by name from an install outside the checkout (a wheel built here, installed into an
empty folder, imported from elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import msc_france, msc_france.config as config
from msc_france.pretrain.config import load_pretrain_config
print(msc_france.__file__)
print(config.PIPELINES_DIR)
print(config.load_recipe("msc-france").name, config.load_catalog("demo-france").name,
      config.load_catalog("planetary-computer").name, load_pretrain_config("pretrain-demo").name)
"""


def test_every_python_package_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "msc_france").rglob("*.py")}
    found |= {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "msc_france").rglob("*.json")}
    for folder in ("pipelines", "catalogs"):  # shipped as msc_france.FOLDER: a subfolder is a package too
        found |= {".".join(("msc_france", *p.parent.relative_to(ROOT).parts)) for p in (ROOT / folder).rglob("*.yaml")}
    assert found <= listed, f"add to pyproject.toml: {sorted(found - listed)}"
    assert {"msc_france.pipelines", "msc_france.catalogs"} <= listed


def test_a_wheel_installed_elsewhere_finds_its_recipes_and_catalogs(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300,
                           check=False)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("msc_france-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"msc_france/pipelines/{p.name}" for p in (ROOT / "pipelines").glob("*.yaml")}
    shipped |= {f"msc_france/catalogs/{p.name}" for p in (ROOT / "catalogs").glob("*.yaml")}
    shipped |= {f"msc_france/pipelines/studies/{p.name}" for p in (ROOT / "pipelines" / "studies").glob("*.yaml")}
    assert "msc_france/pipelines/studies/msad.yaml" in shipped and shipped <= names
    assert "msc_france/data/regions.json" in names
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env,
                           cwd=elsewhere, check=False)
    assert probe.returncode == 0, probe.stderr
    package, pipelines, names_line = probe.stdout.splitlines()
    assert package.startswith(str(target)) and pipelines.startswith(str(target)), "the installed copy, not the checkout"
    assert names_line.split() == ["msc-france", "demo-france", "planetary-computer", "pretrain-demo"]
    version = subprocess.run([sys.executable, "-m", "msc_france", "--version"], capture_output=True, text=True,
                             timeout=300, env=env, cwd=elsewhere, check=False)
    assert version.returncode == 0 and version.stdout.strip() == "msc-france 0.1.0", version.stderr
