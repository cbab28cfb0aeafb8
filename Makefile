# Everything goes through .venv, created on first use. torch is pinned to the CPU wheel
# (torch==2.13.0) so that nothing ever pulls a multi-GB CUDA build; on a GPU machine
# install the CUDA build of the same version into .venv yourself.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: demo test install clean bench mediapipe

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,viz,data,onnx]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/maskpose demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

# Optional learned person segmenter for `prepare --masker mediapipe` (weights ship in this wheel version).
# --no-deps: its metadata pins protobuf<5 (onnx needs >=6) and pulls opencv-contrib/jax, none of which it needs here.
mediapipe: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps mediapipe==0.10.14
	$(BIN)/python -m pip install -q attrs matplotlib

bench: $(STAMP)
	$(BIN)/python benchmarks/render.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
