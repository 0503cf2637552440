"""The front door and the docs site: the README stays short and its links land, every docs page is in the
site's navigation, and the public API's docstring examples hold (mkdocstrings renders them; `make docs`
builds the site with --strict in CI)."""

from __future__ import annotations

import doctest
import re

import pytest
import yaml

import upsample_zoo.upsamplers.base as base
import upsample_zoo.zoo as zoo

from .helpers.cli import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"


def test_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    # the two fresh-machine commands come first, and the test command CI runs is among them
    commands = re.search(r"## Fresh machine: two commands\n+```bash\n(.*?)```", text, re.S).group(1)
    assert [line.split()[:2] for line in commands.splitlines()] == [["make", "train"], ["make", "test"]]


def test_readme_links_land():
    text = README.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.*)$", text, re.M)}
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, link
        else:
            assert (REPO / link).is_file(), link


def test_every_docs_page_is_in_the_navigation():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    def pages(items):
        for item in items:
            value = next(iter(item.values()))
            yield from pages(value) if isinstance(value, list) else [value]

    assert set(pages(config["nav"])) == {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}


@pytest.mark.parametrize("module", [zoo, base], ids=lambda m: m.__name__)
def test_public_api_examples_hold(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_api_docstrings_say_args_and_raises():
    for obj in (zoo.create_upsampler, zoo.check_upsampler, base.Upsampler):
        doc = obj.__doc__
        assert "Args:" in doc and "Raises:" in doc and "Example:" in doc, obj.__qualname__
    assert "Returns:" in zoo.list_upsamplers.__doc__ and "Returns:" in zoo.create_upsampler.__doc__
