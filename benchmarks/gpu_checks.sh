#!/usr/bin/env bash
# The GPU checks docs/performance.md lists as not done, in one run on a CUDA machine, from the
# repository root:
#
#   bash benchmarks/gpu_checks.sh OUT_DIR TRANSITIONS.h5 [WHEEL_DIR]
#
# TRANSITIONS.h5: a preprocessed Hopper file with episode ids (benchmarks.common.medium_dataset
# makes one in seconds on any machine). WHEEL_DIR: wheels of the project's packages the machine
# lacks (pydantic, gymnasium, minari, mujoco...), installed into /tmp/site. Runs, each logged to
# OUT_DIR:
#   1. the CUDA tests: graphed steps equal eager ones for every algorithm (the Decision Transformer
#      included), graphed resume, side streams, disk storage on CUDA, the behaviour SAC's graphed
#      updates on a growing buffer;
#   2. gpu_speed for TD3+BC (5 seeds at once as well, and the training loop) and the Decision
#      Transformer;
#   3. the compiled graphs' correctness (inductor; the slowest part, so last).
# Every part runs even when one before it fails; the exit status is the first failure's.
set -uo pipefail
out=${1:?usage: gpu_checks.sh OUT_DIR TRANSITIONS.h5 [WHEEL_DIR]}
data=${2:?usage: gpu_checks.sh OUT_DIR TRANSITIONS.h5 [WHEEL_DIR]}
wheels=${3:-}
mkdir -p "$out"
if [[ -n "$wheels" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl || exit 2
  export PYTHONPATH=/tmp/site
fi
# No rendering here: MuJoCo need not load an OpenGL library the machine may not have.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MUJOCO_GL=disable
status=0
record() { local rc=$?; ((status == 0 && rc != 0)) && status=$rc; echo "== $1: exit $rc"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__)' | tee -a "$out/gpu.txt"

CUDA_TESTS=(tests/offline_rl/test_cuda_graph.py tests/offline_rl/test_side_stream.py
  tests/offline_rl/test_disk_buffer.py tests/datagen/test_sac.py)
python3 -m pytest -q -p no:cacheprovider -k "not compiled" "${CUDA_TESTS[@]}" 2>&1 |
  tee "$out/pytest.log"
record "CUDA tests"

python3 -m benchmarks.gpu_speed --transitions "$data" --algos td3_bc dt --seconds 2 \
  --loop td3_bc --loop-steps 100000 --seeds 5 --workdir /tmp/gpu_speed \
  --out "$out/gpu_speed.json" 2>&1 | tee "$out/gpu_speed.log"
record "gpu_speed"

python3 -m pytest -q -p no:cacheprovider -k compiled tests/offline_rl/test_cuda_graph.py 2>&1 |
  tee "$out/pytest-compiled.log"
record "compiled graphs"
exit $status
