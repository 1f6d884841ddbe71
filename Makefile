# Thin wrappers around the `msc-france` command line. The first target run on a fresh clone
# creates .venv and installs the project (CPU PyTorch first, so pip never pulls a CUDA build),
# with every other package pinned by constraints.txt (tested versions; no slow dependency search).
# torchvision 0.28 (for timm) comes with torch: it pins torch==2.13.0, which the CPU build satisfies.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0 torchvision==0.28.0

data    ?= data
region  ?= demo
catalog ?= planetary-computer
recipe  ?=
config  ?= $(if $(recipe),pretrain-$(recipe))

# Optional arguments become CLI options only when set.
opt = $(if $($(1)),--$(2) $($(1)))

.PHONY: install download tiles import-msc publish pretrain eval study demo doctor lint test bench grid plan clean

install: $(STAMP)

# MapServer (Debian's cgi-mapserver) serves the demo world's WFS, the mosaic graph with the days of
# flight; without it the demo's VHR is dated to the campaign year (docs/download.md).
MAPSERVER_HINT := note: MapServer is not installed, so the demo WFS is off and demo VHR dates fall back to the campaign year; install it with: sudo apt-get install cgi-mapserver

# torch.compile's CPU backend (inductor) builds its kernels with a C++ compiler: runtime.compile on CPU,
# the compile test and `msc-france doctor` need one.
GXX_HINT := note: no C++ compiler (g++), so torch.compile on CPU fails (runtime.compile, make doctor, tests/test_pretrain_gpu_path.py); install it with: sudo apt-get install g++

$(STAMP): pyproject.toml constraints.txt
	@command -v mapserv >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cgi-mapserver >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cgi-mapserver >/dev/null 2>&1; }; }; } || \
	  echo "$(MAPSERVER_HINT)"
	@command -v g++ >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null 2>&1; }; }; } || \
	  echo "$(GXX_HINT)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

download: $(STAMP)
	$(BIN)/msc-france download --region "$(region)" --catalog "$(catalog)" $(call opt,recipe,recipe) --data "$(data)" \
	  $(call opt,start,start) $(call opt,end,end) $(call opt,max_cloud,max-cloud) $(call opt,window_days,window) \
	  $(if $(filter 1 yes true,$(dry_run)),--dry-run) $(if $(filter 1 yes true,$(yes)),--yes)

tiles: $(STAMP)
	$(BIN)/msc-france tiles $(call opt,recipe,recipe) --data "$(data)" $(call opt,region,region) \
	  $(call opt,store,store) $(call opt,scheduler,scheduler) $(call opt,workers,workers)

import-msc: $(STAMP)
	$(if $(path),,$(error give the MSC-France folder: make import-msc path=FOLDER))
	$(BIN)/msc-france import-msc "$(path)" --data "$(data)" $(call opt,store,store) $(call opt,split,split) \
	  $(call opt,test_cities,test-cities) $(call opt,val_cities,val-cities)

publish: $(STAMP)
	$(BIN)/msc-france publish --data "$(data)" $(call opt,store,store) $(call opt,out,out)

pretrain: $(STAMP)
	$(BIN)/msc-france pretrain --data "$(data)" $(call opt,config,config) $(call opt,run,run-name) $(call opt,seed,seed) \
	  $(if $(filter 1 yes true,$(resume)),--resume) $(if $(filter 1 yes true,$(baselines)),--baselines)

eval: $(STAMP)
	$(BIN)/msc-france eval --data "$(data)" $(if $(or $(run),$(config)),--run "$(or $(run),$(config))") $(call opt,store,store) $(call opt,downstream,downstream) \
	  $(call opt,resamples,resamples) $(call opt,continual,continual) $(if $(filter 0 no false,$(baselines)),--no-baselines)

study: $(STAMP)
	$(if $(name),,$(error give the study: make study name=msad (pipelines/studies/)))
	$(BIN)/msc-france study "$(name)" --data "$(data)" $(call opt,store,store) $(call opt,resamples,resamples)

demo: $(STAMP)
	$(BIN)/msc-france demo run --data "$(data)"

doctor: $(STAMP)
	$(BIN)/msc-france doctor --data "$(data)" $(call opt,store,store)

grid: $(STAMP)
	$(BIN)/msc-france grid $(call opt,recipe,recipe) $(call opt,bbox,bbox)

plan: $(STAMP)
	$(BIN)/msc-france plan --region "$(region)" $(call opt,recipe,recipe) --catalog "$(catalog)" $(call opt,store,store) \
	  --data "$(data)" $(call opt,window_days,window-days)

# Static checks, also the first step of `make test`: ruff (rule set in pyproject.toml) over the code, the
# tests, the benchmarks and tools/, then mypy over the package (strict; README "Static checks").
lint: $(STAMP)
	$(BIN)/ruff check msc_france tests bench tools
	$(BIN)/mypy msc_france

# The suite in TEST_WORKERS pytest-xdist processes (2, the CI machine's cores), a test file to a process
# (--dist loadfile: a file's module fixtures are built once): 8.5 min against about 14 in one process.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The bench extra (torchgeo, webdataset, tensorstore: bench/loader.py) with the tested versions, and torch and
# torchvision held at the installed build (a CPU one, or the CUDA one of a GPU user) so that torchgeo never pulls
# another. constraints.txt's antlr4-python3-runtime (4.13, for moto's server) is left out: torchgeo's lightly
# needs hydra-core, whose omegaconf pins 4.9, and moto's S3 does not use it.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -c "from importlib.metadata import version as v; print(f'torch=={v(\"torch\")}\ntorchvision=={v(\"torchvision\")}')" \
	  > $(VENV)/bench-constraints.txt
	grep -v '^antlr4-python3-runtime==' constraints.txt >> $(VENV)/bench-constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/bench-constraints.txt -e ".[bench]"
	touch $@

# The benchmarks (issue 18's ratios), each run once, in the pipeline's order; the other files of bench/
# (loader_kinds.py, loader_torchgeo.py, timing.py, gpu_part3.sh) are their parts. Most read the demo download and
# store: built first when missing, as `make demo` builds them (download, then tiles). The load test copies the
# demo download 3 x 3 times (5,580 tiles); the GPU figures come from bench/gpu_part3.sh on a GPU machine.
# A benchmark that fails does not stop the others: they are named at the end, and make fails.
BENCH_DEMO := $(data)/demo.tiles.parquet
BENCH_FAILED := $(VENV)/bench-failed
bench_run = @echo '== bench/$(1)'; start=$$(date +%s); if $(BIN)/python bench/$(1); \
  then echo "== bench/$(firstword $(1)): $$(( $$(date +%s) - start )) s"; else echo $(firstword $(1)) >> $(BENCH_FAILED); fi

$(BENCH_DEMO): | $(STAMP)
	$(MAKE) download region=demo catalog=demo data="$(data)"
	$(MAKE) tiles region=demo data="$(data)"

bench: $(BENCH_STAMP) $(BENCH_DEMO)
	@rm -f $(BENCH_FAILED)
	$(call bench_run,download_bytes.py)
	$(call bench_run,plan_scale.py)
	$(call bench_run,tiles_throughput.py --data "$(data)")
	$(call bench_run,shard_writer.py --data "$(data)")
	$(call bench_run,tiles_graph.py)
	$(call bench_run,tiles_load.py --source "$(data)/catalogs/demo" --copies 3)
	$(call bench_run,loader.py --store "$(data)/demo.zarr" --catalog "$(data)/catalogs/demo")
	$(call bench_run,pretrain_throughput.py --store "$(data)/demo.zarr")
	$(call bench_run,pretrain_precision.py --store "$(data)/demo.zarr")
	$(call bench_run,openmp_wait.py)
	@if [ -s $(BENCH_FAILED) ]; then echo "failed: $$(tr '\n' ' ' < $(BENCH_FAILED))"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
