"""The house rules that keep the code small and findable: every module under src/ is named in the docs'
architecture picture (docs/architecture.md), none is over 400 lines, and no function is over about 60 lines."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

from .helpers.cli import REPO

SRC = REPO / "src" / "upsample_zoo"
MODULES = sorted(p for p in SRC.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))
MAX_MODULE_LINES = 400
TEST_MODULES = sorted((REPO / "tests").rglob("test_*.py"))
TEST_DIRS = ("upsamplers", "models", "metrics", "data", "tasks", "report", "bench", "e2e")
MAX_FUNCTION_LINES = 65  # "about 60": one shape drawer of the synthetic data keeps its random draws in order


def architecture_picture() -> str:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    return re.findall(r"```\n(configs/.*?)```", page, re.S)[0]


def entry(picture: str, package: str) -> str:
    """The text of one package's entry: its line and the indented lines that continue it."""
    match = re.search(rf"^  {re.escape(package)}/ +(.*?)(?=^  \S|\Z)", picture, re.S | re.M)
    assert match, f"the architecture picture has no {package}/ entry"
    return match.group(1)


def test_every_module_is_in_the_architecture_picture():
    picture = architecture_picture()
    missing = []
    for p in MODULES:
        rel = p.relative_to(SRC)
        if len(rel.parts) == 1:
            named = p.name in picture
        else:
            named = re.search(rf"\b{re.escape(p.stem)}\b", entry(picture, rel.parts[0])) is not None
        if not named:
            missing.append(str(rel))
    assert not missing, f"not in docs/architecture.md's picture: {missing}"


def test_modules_and_functions_stay_small():
    long_modules = {str(p.relative_to(SRC)): n for p in MODULES
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long_modules
    long_functions = []
    for p in MODULES:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{p.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert not long_functions


def test_the_suite_does_not_pile_up_its_temp_dirs(pytestconfig):
    """A full run writes ~11 GB of smoke runs under pytest's temp dir; pytest's default keeps every test's
    directory for three sessions, which once filled the CI disk (ENOSPC in the fourth run). Passed tests'
    directories go, and only the last session's failures stay."""
    assert pytestconfig.getini("tmp_path_retention_policy") == "failed"
    assert int(pytestconfig.getini("tmp_path_retention_count")) <= 1


def test_every_config_target_names_a_package_face():
    """`_target_: upsample_zoo.data.CIFAR10DataModule`, never the module that holds the class today: a move
    inside a package then changes no config and no config hash (resumable sweeps)."""
    from hydra._internal.utils import _locate

    configs = REPO / "configs"
    targets = {t for p in configs.rglob("*.yaml")
               for t in re.findall(r"_target_: *(upsample_zoo\.[\w.]+)", p.read_text(encoding="utf-8"))}
    assert len(targets) > 20
    for target in sorted(targets):
        parts = target.split(".")
        assert len(parts) == 3, f"{target}: name the package face (upsample_zoo.<package>.<Name>)"
        obj = _locate(target)
        assert obj.__name__ == parts[-1] and obj.__module__.startswith("upsample_zoo."), target


def test_importing_the_tasks_leaves_matplotlibs_backend_alone():
    """A notebook's backend stays: the figures are drawn on plain matplotlib Figures (Agg through savefig),
    and nothing calls matplotlib.use at import time."""
    code = ("import matplotlib; import upsample_zoo.tasks.segmentation, upsample_zoo.tasks.gan, upsample_zoo.figures, "
            "upsample_zoo.probe, upsample_zoo.report.charts; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MPLBACKEND": "svg"}, check=True)
    assert out.stdout.strip().lower() == "svg"


def test_the_report_and_the_bench_know_no_task_by_name():
    """The report and the bench read what each task declares (tasks/declarations.py, ZooTask): a new task needs
    no change in either."""
    named = [f"{p.relative_to(SRC)}:{i}" for d in ("report", "bench") for p in sorted((SRC / d).rglob("*.py"))
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"""["'](segmentation|gan)["']""", line)]
    assert not named


def test_every_markdown_table_is_drawn_by_the_table_model():
    """One home for markdown tables (report/table_model.py): the report, the bench's rows and the probe build a
    Table; nothing else writes a table's separator line by hand."""
    separator = re.compile(r"""["']\|-{3}""")
    drawn = [f"{p.relative_to(SRC)}:{i}" for p in MODULES if p.name != "table_model.py"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if separator.search(line)]
    assert not drawn


def test_test_modules_stay_small_too():
    big = [f"{p.relative_to(REPO)}: {n}" for p in TEST_MODULES
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not big


def test_conditional_skips_go_through_run_if():
    """One skip marker (tests/helpers/run_if.py: a GPU, the headless Chromium, shared data), no ad-hoc skipif."""
    ad_hoc = [f"{p.relative_to(REPO)}:{i}" for p in TEST_MODULES if p.name != "test_layout.py"
              for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "mark.skipif(" in line]
    assert not ad_hoc


def test_tests_mirror_the_source_and_e2e_holds_what_runs_the_cli():
    """tests/{upsamplers,models,metrics,data,tasks,report,bench}/ hold the unit tests by the source's packages,
    tests/e2e/ everything that trains, sweeps or runs the CLI (marked slow once, by its conftest); only the
    house's own checks stay at the top."""
    tests = REPO / "tests"
    top = sorted(p.name for p in tests.glob("test_*.py"))
    assert top == ["test_docs.py", "test_hydra_callbacks.py", "test_layout.py"]
    assert {p.parent.name for p in TEST_MODULES if p.parent != tests} <= set(TEST_DIRS)
    cli = re.compile(r"\b(run_cli|run_in_process|smoke_sweep|smoke_run|gan_pair_sweep)\b")
    outside = [str(p.relative_to(REPO)) for p in TEST_MODULES if p.parent.name != "e2e" and p.parent != tests
               and cli.search(p.read_text(encoding="utf-8"))]
    assert not outside, f"these run the CLI or train: move them to tests/e2e/: {outside}"
    marked = [str(p.relative_to(REPO)) for p in (tests / "e2e").glob("test_*.py")
              if "mark.slow" in p.read_text(encoding="utf-8")]
    assert not marked, f"tests/e2e/conftest.py marks these slow already: {marked}"
