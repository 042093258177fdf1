#!/usr/bin/env bash
# Issue 11's checks on a lent GPU, as one prepared command that fits one device call.
#
#   benchmarks/gpu_session.sh [SECONDS [STEP ...]]   # default 540 s, every step
#
# Run from the repository root on the device machine (the `device` tool's `run`), e.g.
#   run(command="bash benchmarks/gpu_session.sh 540", timeout_s=600,
#       carry=[".cache/synthetic_fer"])       # the engine step's data, if rendered here
# It uses that machine's python3 (PyTorch, torch-geometric, pytest, pytest-xdist, OpenCV,
# scikit-image and onnxruntime are in its image; torch-cluster and captum are not, and their
# tests skip) with pyg_fer from this checkout on PYTHONPATH: nothing is installed.
#
# Steps, most important first; each is cut at its own cap or at the overall deadline, so a
# step that does not fit leaves the earlier results intact; name steps to run only those
# (e.g. a second call on the still-warm machine: `... 300 compiled_train suite`). What comes
# back (the tool returns at most 8 files from $OUT): session.log (every step's whole output),
# summary.txt (a status line per step, also printed last), the JSON of each benchmark step
# and the engine run's metrics.jsonl. The steps and the issue-11 items they answer:
#   env             GPU, driver, torch / PyG versions
#   cuda            the CUDA-marked tests: no host sync, the AMP + channels-last engine, fused
#                   and compiled paths equal to the propagate reference in fp32      (3, 4)
#   eager           throughput: 6 models x {bf16, fp16} x {contiguous, channels_last},
#                   inference and training, batch 64 at 224, ratios to ResNet-18 and peak
#                   memory                                                           (1)
#   profile         face2nodes eager, bf16, channels-last: top CUDA ops, launches per
#                   block, inference and training                                    (2)
#   compiled_infer  face2nodes and resnet18_fer compiled (default, reduce-overhead = CUDA
#                   graphs), bf16, channels-last, inference                          (1, 2)
#   engine          `pyg-fer train synthetic_face2nodes` on CUDA (8 epochs of 47 steps):
#                   loss per epoch and images/s                                      (5)
#   compiled_train  as compiled_infer, training steps                                (1, 2)
#   suite           the whole test suite on the GPU machine (pytest -n 8)            (4)
set -u
BUDGET=${1:-540}
shift || true
ONLY=" $* "
START=$(date +%s)
OUT=${OUT:-$PWD/gpu_out}
WORK=$(mktemp -d)
mkdir -p "$OUT"
PY=${PYTHON:-python3}
# A dry run off the GPU: DEVICE=cpu SIZE_ARGS='--img-size 32 --batch-size 2' (word-split).
DEV=${DEVICE:-cuda}
read -r -a SIZE <<<"${SIZE_ARGS:-}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
: >"$OUT/session.log"

left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME CAP COMMAND...: run COMMAND with at most min(CAP, time left) seconds.
step() {
    local name=$1 cap=$2
    shift 2
    if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then
        return
    fi
    local t
    t=$(left)
    if [ "$t" -lt 20 ]; then
        echo "$name: not run (${t}s left)" | tee -a "$SUMMARY"
        return
    fi
    [ "$cap" -lt "$t" ] && t=$cap
    echo "== $name (cap ${t}s): $*" | tee -a "$OUT/session.log"
    local s rc
    s=$(date +%s)
    timeout --signal=INT --kill-after=10 "$t" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    cat "$WORK/$name.log" >>"$OUT/session.log"
    echo "$name: rc $rc in $(($(date +%s) - s))s$([ $rc -eq 124 ] && echo ' (cut at its cap)')" \
        | tee -a "$SUMMARY"
    grep -v -E "Warning|warnings.warn|^  (infer|train) round" "$WORK/$name.log" | tail -n 30
}

MODELS=(resnet18_fer face2nodes face2nodes_mr face2nodes_stem vig_ti_fer agfn_resnet18)
COMPILED=(--device "$DEV" "${SIZE[@]}" --repeats 5 --models resnet18_fer face2nodes
          --amp bf16 --memory-format channels_last --compile default reduce-overhead)
# the step fails when nvidia-smi or the imports fail; only the package list may come up empty
step env 30 bash -c "nvidia-smi && $PY -c 'import torch, torch_geometric as g, torchvision as v; \
print(torch.__version__, torch.version.cuda, g.__version__, v.__version__, \
torch.cuda.get_device_name())' && { $PY -m pip list 2>/dev/null | grep -i -E \
'torch|onnx|opencv|scikit|pytest|captum' || true; }"
step cuda 180 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
step eager 110 "$PY" benchmarks/throughput.py --device "$DEV" "${SIZE[@]}" --repeats 5 \
    --warmup 2 \
    --models "${MODELS[@]}" --amp bf16 fp16 --memory-format contiguous channels_last \
    --json "$OUT/throughput_eager.json"
PROFILE=(--device "$DEV" "${SIZE[@]}" --amp bf16 --channels-last)
step profile 60 bash -c "$PY benchmarks/profile_model.py ${PROFILE[*]@Q} --mode infer \
--json $OUT/profile_infer.json && $PY benchmarks/profile_model.py ${PROFILE[*]@Q} \
--mode train --json $OUT/profile_train.json"
step compiled_infer 150 "$PY" benchmarks/throughput.py "${COMPILED[@]}" --only infer \
    --json "$OUT/throughput_compiled_infer.json"
step engine 100 "$PY" -m pyg_fer train synthetic_face2nodes "train.device=$DEV" \
    "output.dir=$WORK/runs"
find "$WORK/runs" -name metrics.jsonl -exec cp {} "$OUT/engine_metrics.jsonl" \; 2>/dev/null
step compiled_train 200 "$PY" benchmarks/throughput.py "${COMPILED[@]}" --only train \
    --json "$OUT/throughput_compiled_train.json"
step suite 300 "$PY" -m pytest -q -n 8 -p no:cacheprovider tests

echo
echo "== summary ($(($(date +%s) - START))s of ${BUDGET}s; logs and JSON in $OUT)"
cat "$SUMMARY"
