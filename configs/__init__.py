# The config root ships inside the wheel as the package upsample_zoo.configs (pyproject.toml, package-dir):
# code finds it through the package (upsample_zoo.zoo.config_dir), never through a path into the repo.
