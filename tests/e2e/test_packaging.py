"""Install it like any tool: build the wheel, install it (not editable) into a fresh venv, train from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import upsample_zoo

from ..helpers.cli import REPO


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """`python -m build` (sdist, then the wheel built from that sdist), no network: the venv's setuptools."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_wheel_and_sdist_carry_the_configs(dist):
    wheel = next(dist.glob("upsample_zoo-*.whl"))
    assert wheel.name.startswith(f"upsample_zoo-{upsample_zoo.__version__}-")  # the version's one home
    names = zipfile.ZipFile(wheel).namelist()
    want = {f"upsample_zoo/configs/{p.relative_to(REPO / 'configs').as_posix()}"
            for p in (REPO / "configs").rglob("*.yaml")}
    assert want <= set(names) and "upsample_zoo/configs/upsampler/carafe.yaml" in want
    # the report's template, style and script are read from the installed package at render time
    templates = ("comparison.html.j2", "comparison.css", "sort.js")
    assert {f"upsample_zoo/report/templates/{n}" for n in templates} <= set(names)
    assert next(dist.glob("upsample_zoo-*.tar.gz")).stat().st_size > 0


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable); torch & co. come from this venv's site-packages
    through a .pth path (its own .pth files, the editable install among them, are not read from there)."""
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = next((env / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("upsample_zoo-*.whl"))
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return env


def test_installed_wheel_trains_from_another_directory(venv, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("UPSAMPLE_ZOO_ROOT", "PYTHONPATH", "HYDRA_FULL_ERROR")}
    api = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import upsample_zoo as uz, upsample_zoo.zoo as z; print(uz.__file__); "
                          "print(z.config_dir()); print(uz.list_upsamplers()); "
                          "print(uz.create_upsampler('carafe', 64, 32).num_parameters())"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert api.returncode == 0, api.stderr[-2000:]
    module_file, configs, names, params = api.stdout.strip().splitlines()
    assert module_file.startswith(str(venv)) and configs.startswith(str(venv))  # not the repo
    assert "'carafe'" in names and int(params) == 63940
    version = subprocess.run([str(venv / "bin" / "upsample-zoo"), "--version"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"upsample-zoo {upsample_zoo.__version__}"
    proc = subprocess.run([str(venv / "bin" / "upsample-zoo"), "train", "upsampler=tconv", "debug=smoke"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list((work / "logs" / "segmentation" / "runs").glob("*_tconv_s0/results.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["status"] == "ok"
    assert (work / "data" / "voc_synthetic").is_dir()  # data, caches and logs under the current directory
