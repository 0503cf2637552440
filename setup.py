"""Only the package list: pyproject.toml holds everything else (it cannot add a mapped package to a found list)."""
from setuptools import find_packages, setup

setup(packages=[*find_packages("src"), "upsample_zoo.configs"])
