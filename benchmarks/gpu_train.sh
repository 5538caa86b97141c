#!/usr/bin/env bash
# Issue 13's long training run on the lent GPU machine, in one call: builds the samples on all
# cores (the segmentation snapshots on the GPU) and fine-tunes the default network in bf16 on
# the GPU, within a fixed wall time, then writes the network (without the label calibration,
# which is fitted afterwards on the CPU: python -m qsaudit.training.calibrate) to $OUT.
#
# Made for the project's lent GPU machine (one H200, 16 cores, python 3.12 with PyTorch; no
# nibabel, isal or cc3d, no text encoder, no package index, 64 MiB carried in all). Before
# the call, here, in the repository root (.devcarry/ is ignored: echo /.devcarry/ >>
# .git/info/exclude):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .devcarry/whl nibabel isal connected-components-3d
#   python -m qsaudit.training.embeddings .devcarry/vocab.npz        # names -> MiniLM vectors
#   .devcarry/init.pt: the starting model file (its network in fp16, meta with its split)
#   .devcarry/openkbp: ../shared/data/openkbp without the benchmark's 14 test patients
#
# and move qsaudit/weights/qsaudit-default.pt aside for the call (the tree must stay under
# 64 MiB); then run `bash benchmarks/gpu_train.sh` there with carry [".devcarry"].
# Settings by environment: MINUTES (whole run, default 8), EPOCHS (16), LR (3e-4), PHANTOMS
# (16), TRUNK (24), DERIVED (lungs,vertebrae), DEVICE (cuda), WORKERS (cores - 1), DATA.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
carry=$root/.devcarry
out=${OUT:-$root/gpu-train}
work=${WORK:-/tmp/qsaudit-gpu-train}
mkdir -p "$out" "$work"
python=${PYTHON:-python3}
if compgen -G "$carry/whl/*.whl" > /dev/null && ! "$python" -c "import nibabel, isal, cc3d" \
        2> /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/qsaudit-site "$carry"/whl/*.whl
    export PYTHONPATH=/tmp/qsaudit-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
cores=$(nproc)
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
        || echo "nvidia-smi: not available"
    "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.cuda.is_available())"
    echo "cores $cores"
} 2>&1 | tee "$out/machine.txt"

set +e
"$python" -m qsaudit train --out "$work/m.pt" --data "${DATA:-$carry/openkbp}" \
    --phantoms "${PHANTOMS:-16}" --trunk-phantoms "${TRUNK:-24}" \
    --derived "${DERIVED:-lungs,vertebrae}" --epochs "${EPOCHS:-16}" --lr "${LR:-3e-4}" \
    --workers "${WORKERS:-$((cores > 1 ? cores - 1 : 1))}" --max-minutes "${MINUTES:-8}" \
    --init "$carry/init.pt" --embeddings "$carry/vocab.npz" --device "${DEVICE:-cuda}" \
    --no-calibrate --quiet 2>&1 | tee "$out/train.txt"
status=${PIPESTATUS[0]}
set -e
cp "$work/m.log.jsonl" "$out/" 2>/dev/null || true
if [ "$status" -eq 0 ]; then
    cp "$work/m.pt" "$out/m.pt"
fi
echo "qsaudit train exited $status" | tee -a "$out/train.txt"
exit "$status"
