#!/usr/bin/env bash
# Issue 18, part 3: the trainer on one GPU (an H100 of the device tool), in ONE device call of about 6 min.
#
# 1. Here, on the CPU machine, with the project installed (`make install`), once:
#        bash bench/gpu_part3.sh prepare
#    It puts into the checkout, in paths that git ignores (`*.whl`, `/data/`), what the device machine lacks:
#    - .whl/: wheels (CPython 3.12, manylinux x86-64, the versions of constraints.txt) of the packages that
#      bench/pretrain_throughput.py imports and the device image has not (the device tool's KINDS.md lists what it has):
#      pydantic (+ pydantic-core, annotated-types, typing-inspection, typing-extensions), zarr (+ numcodecs,
#      donfig, google-crc32c), geopandas, shapely, pyproj, odc-geo (+ affine, cachetools), dask. About 26 MB.
#      The device has torch, torchvision, timm, numpy, pandas, pyarrow, xarray, PyYAML, Pillow, matplotlib.
#    - data/part3/: a synthetic store of the msc-france recipe, 16 tiles of 1920 m (s2 192 px, l8 64 px, vhr
#      1280 px; `python -m tests.data.tile_store data/part3/store.zarr msc-france 1`), about 25 MB. It is written
#      here because its writer needs rasterio, boto3 and Dask's distributed, which the device has not (tens of MB
#      more wheels: with them the 64 MiB that travel would not hold both). The benchmark shows each tile 128
#      times an epoch: 32 batches of 64, more than a run's steps, so that no epoch ends (and drains the
#      workers' queue) inside a run.
# 2. Then with the device tool, as ONE call (the wheels and the store travel as carried paths):
#        run(command="bash bench/gpu_part3.sh device", carry=[".whl", "data/part3"], timeout_s=600)
#    On the device (no network): the wheels go into /tmp/site (pip --no-index), then bench/pretrain_throughput.py
#    runs ViT-B/16 then ViT-S/16 (the pretrain-msc-france preset: 224/96 px, 2 + 8 crops, MSAD over s2, l8 and vhr,
#    batch 64, bf16), our loop eager, the authors' loop, our loop compiled, each 20 timed steps and 2 profiled
#    ones, 12 loader workers (prefetch 1: a batch of our loader is 0.36 GB of DN as stored in shared memory, the
#    reference's crops less; fewer workers where /dev/shm is smaller than 6 GB), against the measured bf16 matmul peak. The benchmark is stopped at 520 s whatever happens, so that the outputs come
#    back (at most 8 files of 16 MiB):
#    $OUT/part3.log              everything printed: per run images/s, data-wait share, TFLOP/s, MFU, peak CUDA
#                                memory, the top ops of each profile; the summary table and the ratios at its end
#    $OUT/profile-tables.tar.gz  per run LABEL.txt, its ops by self device time (40 rows)
#    $OUT/LABEL.json.gz          per run a Chrome trace (Perfetto or chrome://tracing), LABEL as in the log:
#                                ARCH-msc-france-eager, ARCH-reference-eager, ARCH-msc-france-compiled
#    Arguments after `device` go to bench/pretrain_throughput.py after the script's own, so they override them
#    (`device --arch vit_base_patch16 --steps 10`).
#
# Estimate, from the FLOP count of bench/pretrain_throughput.py (on CPU) and CPU runs: a training sample is
# 1,030 GFLOP for ViT-B/16 and 261 for ViT-S/16 (2 x 224 + 8 x 96 px crops through the student, 2 x 224 through
# the teacher, and MSAD's 3 sensor pairs: 6 student passes of 224 px views, each sensor's computed once per
# pair), so a step of 64 is 66 and 17 TFLOP: at 40 % of an H100's ~800 TFLOP/s measured bf16 peak, 0.21 and
# 0.05 s, 310 and 1,230 images/s. Our loader hands over 5.6 MB of DN a sample (uint8 VHR at 1280 px, normalised on
# the GPU), about 61-67 samples per core-second measured on CPU with workers (docs/pretrain.md, Loader): 12
# workers feed some 700-800 a second, so ViT-B/16 should not wait for data and ViT-S/16 will; the reference's per-sample PIL work is 15 samples per core-second,
# about 185 a second from 12 workers: it waits for data with both architectures. A run is ~30 steps (warm-up, FLOP count, timed, profiled): seconds
# of GPU time; the rest is starting 12 workers per run (~10 s), the reference's per-sample PIL work and
# compiling (one to two minutes per architecture). About 6 min in all; what the 520 s cut would leave out is
# ViT-S/16 compiled, last.
set -euo pipefail
cd "$(dirname "$0")/.."
PART3=data/part3
STORE=$PART3/store.zarr  # its index store.tiles.parquet beside it

prepare() {
    local pins=(affine annotated-types cachetools dask donfig geopandas google-crc32c numcodecs odc-geo pydantic
                pydantic_core pyproj shapely typing-inspection typing_extensions zarr)
    local specs=() name pin
    for name in "${pins[@]}"; do
        pin=$(grep -i -E "^${name//[-_]/[-_]}==" constraints.txt) || { echo "no pin for $name in constraints.txt"; exit 1; }
        specs+=("$pin")
    done
    rm -rf .whl && mkdir .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl "${specs[@]}"
    rm -rf "$PART3" && mkdir -p "$PART3"
    .venv/bin/python -m tests.data.tile_store "$STORE" msc-france 1
    du -sh .whl "$PART3"
    echo "now: run(command=\"bash bench/gpu_part3.sh device\", carry=[\".whl\", \"$PART3\"], timeout_s=600)"
}

device() {
    : "${OUT:?run on the device machine, where OUT is set}"
    [ -d .whl ] && [ -d "$STORE" ] || { echo "carry .whl and $PART3 (bash bench/gpu_part3.sh prepare, here)"; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
    {  # the machine, for the record; nothing here may stop the run
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
        python3 -c "from importlib.metadata import version as v; print(*(f'{p} {v(p)}' for p in ('torch', 'timm')))"
        echo "$(nproc) cores"; df -h /dev/shm | tail -1
    } 2>&1 | tee "$OUT/part3.log" || true
    local status=0 profile=/tmp/part3-profile shm workers
    rm -rf "$profile"
    # a worker holds one batch of at most 0.4 GB in shared memory (ours: 0.36 GB of DN), the main process about
    # three more
    shm=$(df --output=avail -BG /dev/shm | tail -1 | tr -dc 0-9)
    workers=$(( shm * 10 / 4 - 3 )); workers=$(( workers > 12 ? 12 : workers < 1 ? 1 : workers ))
    echo "$workers loader workers for ${shm} GB of /dev/shm" | tee -a "$OUT/part3.log"
    timeout -k 15 520 python3 bench/pretrain_throughput.py --config pretrain-msc-france --store "$STORE" \
        --arch vit_base_patch16 vit_small_patch16 --compile off on --steps 20 --tile-repeat 128 \
        --workers "$workers" --prefetch 1 --profile "$profile" --profile-steps 2 "$@" 2>&1 | tee -a "$OUT/part3.log" \
        || status=$?
    if [ -d "$profile" ]; then
        (cd "$profile" && tar -czf "$OUT/profile-tables.tar.gz" ./*.txt) || true
        cp "$profile"/*.json.gz "$OUT"/ || true
    fi
    ls -la "$OUT" | tee -a "$OUT/part3.log"
    echo "exit status $status" | tee -a "$OUT/part3.log"
}

case "${1:-}" in
    prepare) prepare ;;
    device) shift; device "$@" ;;
    *) echo "usage: bash bench/gpu_part3.sh prepare | device [ARGS of bench/pretrain_throughput.py, after ours]"; exit 2 ;;
esac
