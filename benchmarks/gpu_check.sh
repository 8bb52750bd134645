#!/usr/bin/env bash
# One prepared run on a machine with a CUDA GPU: the CUDA tests, then every benchmark on the GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (default /tmp/lieconv-gpu)
#   BASELINE=301b6b0 bash benchmarks/gpu_check.sh   # also a git revision, interleaved (needs the git history;
#                                                   # twice the processes in the same time limits)
#
# Uses the python3 that has a CUDA build of torch (PYTHON to choose another) with the package from
# src/ (no install step).  Each part has its own time limit (a part that runs out is reported and
# the next one starts; the large-cloud cases print as they finish): 9.5 minutes at most, so it fits
# one 10-minute call of a lent machine.  Writes tests.txt and one
# JSON file per benchmark into $OUT, and prints the tables.
set -uo pipefail
OUT=${OUT:-/tmp/lieconv-gpu}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: a dry run of the script itself
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
base=()
[ -n "${BASELINE:-}" ] && base=(--baseline "$BASELINE")

part() {  # part SECONDS NAME COMMAND...: run with a limit, say how it ended
    local limit=$1 name=$2
    shift 2
    echo "== $name"
    timeout "$limit" "$@"
    local rc=$?
    [ $rc -eq 124 ] && echo "== $name: stopped after $limit s"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "== $name: exit status $rc"
    return 0
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
LIECONV_TEST_DEVICE=$DEVICE part 120 "CUDA tests" "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_host_syncs.py \
    -o addopts="" 2>&1 | tee "$OUT/tests.txt"
part 120 "RotMNIST step" "$PY" benchmarks/bench_step.py --device "$DEVICE" --steps 3 "${base[@]}" --json "$OUT/step.json"
part 90 "QM9 step" "$PY" benchmarks/bench_molecule.py --device "$DEVICE" --steps 3 "${base[@]}" --json "$OUT/molecule.json"
part 90 "springs step" "$PY" benchmarks/bench_springs.py --device "$DEVICE" --steps 3 --repeats 1 "${base[@]}" \
    --json "$OUT/springs.json"
part 150 "large clouds" "$PY" benchmarks/bench_large_cloud.py --device "$DEVICE" --cases T3-1e4,T3-3e4,T3-1e5,SE3x2-1e4,SE3x2-1e5 \
    --json "$OUT/large_cloud.json"
