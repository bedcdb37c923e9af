#!/bin/bash
# The GPU session of issue #21 as one prepared command (docs/benchmarks.md, "GPU").
#
#   bash benchmarks/gpu_session.sh prepare     # here: copies what the GPU machine lacks into .gpu/
#   bash benchmarks/gpu_session.sh rehearse    # here: the same steps on the CPU (gpu_check --rehearse)
#   bash benchmarks/gpu_session.sh run         # there: with carry [".gpu"], output under $OUT
#
# The GPU machine has python3 with torch, pandas, h5py, typer, rich and sentencepiece and reaches
# no package registry, so duvae runs from the checkout (PYTHONPATH) without installing; ../shared
# does not travel, so `prepare` copies the paper's code and short yelp into .gpu/shared (~2 MB,
# git-ignored through .git/info/exclude) and DUVAE_SHARED points the benchmarks at it.
set -u
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  prepare)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    rm -rf .gpu && mkdir -p .gpu/shared/data
    cp -r ../shared/reference .gpu/shared/ && cp -r ../shared/data/short_yelp .gpu/shared/data/
    du -sh .gpu
    exit 0 ;;
  run|rehearse) ;;
  *) echo "usage: gpu_session.sh prepare|rehearse|run" >&2; exit 2 ;;
esac
[ -d .gpu/shared ] || { echo "gpu_session: run 'prepare' first (.gpu/shared is missing)" >&2; exit 2; }
out=${OUT:-/tmp/gpu-session}
mkdir -p "$out"
export PYTHONPATH=$PWD DUVAE_SHARED=$PWD/.gpu/shared PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
{
  date -u; nvidia-smi 2>&1 | head -15
  $python -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$out/env.txt"
if [ "$mode" = run ]; then
  timeout 150 $python -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py 2>&1 | tee "$out/pytest_cuda.txt"
  timeout 480 $python benchmarks/gpu_check.py --pairs 1 --out "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.txt"
else
  $python -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py 2>&1 | tail -1 | tee "$out/pytest_cuda.txt"
  $python benchmarks/gpu_check.py --rehearse --out "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.txt"
fi
