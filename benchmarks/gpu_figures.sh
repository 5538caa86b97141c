#!/usr/bin/env bash
# Issue 15's GPU figures in one call: scan throughput (labels/s) of the default model and of a
# paper-sized ResNet-50 at 256 px, the ratio to a paper-style loop (batch 1, CT re-read per label)
# on the same GPU, and the GPU memory a scan takes (scan.json -> timings.gpu_peak_mib).
#
# Made for the project's lent GPU machine (one H200, 16 cores; its python3 holds PyTorch, but not
# nibabel, isal or connected-components-3d, and it reaches no package index). Before the call,
# here, in the repository root (once; .whl/ is ignored by git and travels with `carry`):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl nibabel isal connected-components-3d
#
# then run `bash benchmarks/gpu_figures.sh` there with carry [".whl"] (about 3-5 minutes; the
# logs land in $OUT). Anywhere else it runs as is (no .whl: the installed packages are used).
# Usage: bash benchmarks/gpu_figures.sh [--cases 10] [--labels 15] [--workers 6] [--device cuda]
set -euo pipefail

cases=10
labels=15
workers=6
device=cuda
while [ $# -gt 0 ]; do
    if [ $# -lt 2 ]; then echo "gpu_figures.sh: $1 needs a value" >&2; exit 2; fi
    case "$1" in
        --cases) cases=$2; shift 2 ;;
        --labels) labels=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        *) echo "gpu_figures.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/gpu-figures}
mkdir -p "$out"
python=${PYTHON:-python3}
if compgen -G "$root/.whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/qsaudit-site "$root"/.whl/*.whl
    export PYTHONPATH=/tmp/qsaudit-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
        || echo "nvidia-smi: not available"
    "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.cuda.is_available())"
    nproc
} 2>&1 | tee "$out/machine.txt"

# parts 1-3 of scan_speed.py: the ResNet-50 scan against the paper-style loop (ratio), the
# default model's scan with its breakdown, and peak memory
"$python" "$root/benchmarks/scan_speed.py" --device "$device" --cases "$cases" \
    --labels "$labels" --workers "$workers" --r50-cases 4 --baseline-cases 1 \
    2>&1 | tee "$out/scan_speed.txt"
