#!/usr/bin/env bash
# One call on the GPU machine: build in place, say whether the CUDA backend loads (and why
# not), run the gpu-marked tests (the tensor-core ones first), then benchmark the CUDA
# kernels against cuBLAS, cuDNN, the copy bandwidth and the CPU (benchmarks/bench_gpu.py,
# with the tensor-core rows of bench_gpu_tc.py: float16, bfloat16 and TF32 against cuBLAS
# and cuDNN in the same dtype), whose table comes last.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, under ~7 minutes
#
# Every stage runs under a timeout taken from one overall budget (GPU_CHECK_BUDGET seconds,
# default 420) and a failing stage never stops the later ones. When $OUT is set, the whole
# output goes to $OUT/gpu_check.log too, with build.log, gpu_tests.log and gpu_bench.txt.
# Only sm_90 (H100/H200) is compiled unless CONVNET_CUDA_ARCH says otherwise.
set -u
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-}"
if [ -n "$OUTDIR" ]; then
  mkdir -p "$OUTDIR"
  exec > >(tee -a "$OUTDIR/gpu_check.log") 2>&1
else
  OUTDIR="$(mktemp -d)"
fi
BUDGET="${GPU_CHECK_BUDGET:-420}"
START=$SECONDS
left() { echo $(( BUDGET - (SECONDS - START) )); }
# a stage's timeout: at most $1 seconds, and never past the budget minus a reserve $2
slot() { local l; l=$(( $(left) - $2 )); [ "$l" -gt "$1" ] && l=$1; [ "$l" -lt 10 ] && l=10; echo "$l"; }
banner() { echo; echo "=== [$(( SECONDS - START ))s] $*"; }

banner "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -5
python --version
nvcc --version 2>&1 | tail -1
python - <<'PY' 2>&1
import importlib
for name in ("cupy", "torch", "numba", "pybind11"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "not importable:", exc)
PY

banner "build (pip install --no-build-isolation --no-deps -e .)"
export CONVNET_CUDA_ARCH="${CONVNET_CUDA_ARCH:-90}"
t=$(slot 200 200)
if timeout "$t" pip install --no-build-isolation --no-deps -v -e . > "$OUTDIR/build.log" 2>&1; then
  echo "build ok in $(( SECONDS - START ))s (log: build.log)"
else
  echo "BUILD FAILED or timed out (${t}s); the end of build.log:"
fi
grep -E "convnet: (not building|building without)|nvcc failed|error" "$OUTDIR/build.log" | head -40
tail -n 5 "$OUTDIR/build.log"

banner "does the CUDA backend load?"
python - <<'PY' 2>&1
import traceback
try:
    import convnet._cuda as ext
    print("convnet._cuda imported: built for", ext.compiled_archs(), "runtime", ext.runtime_version())
    print("devices:", ext.device_count(), ext.device_info(0))
except Exception:
    print("convnet._cuda did NOT import or has no device:")
    traceback.print_exc()
import convnet as cn
for name, info in cn.backends().items():
    print(f"backend {name}: {'available' if info['available'] else 'UNAVAILABLE'} - {info['detail']}")
PY

banner "tensor-core gpu tests (tests/kernels/test_cuda_tc.py: float16, bfloat16, TF32)"
# first and on their own, so that a slow rest of the suite cannot hide them
t=$(slot 60 170)
timeout "$t" python -m pytest -m gpu -q tests/kernels/test_cuda_tc.py -rs --tb=short \
  -p no:cacheprovider > "$OUTDIR/gpu_tc_tests.log" 2>&1
status=$?
[ "$status" -eq 124 ] && echo "TENSOR-CORE TESTS TIMED OUT after ${t}s"
grep -E "^(FAILED|ERROR) |^E  " "$OUTDIR/gpu_tc_tests.log" | head -40
tail -n 3 "$OUTDIR/gpu_tc_tests.log"
echo "pytest -m gpu test_cuda_tc.py exit status: $status"

banner "gpu tests (python -m pytest -m gpu -q tests/kernels)"
t=$(slot 180 110)
timeout "$t" python -m pytest -m gpu -q tests/kernels -rs --tb=short -p no:cacheprovider \
  --ignore=tests/kernels/test_cuda_tc.py > "$OUTDIR/gpu_tests.log" 2>&1
status=$?
[ "$status" -eq 124 ] && echo "GPU TESTS TIMED OUT after ${t}s"
# failures first (short tracebacks), then pytest's summary lines
grep -E "^(FAILED|ERROR) |^E  " "$OUTDIR/gpu_tests.log" | head -80
tail -n 4 "$OUTDIR/gpu_tests.log"
echo "pytest -m gpu exit status: $status"
# the unmarked CUDA checks too (build, argument checks, backends() on a real device)
timeout 60 python -m pytest -q tests/kernels/test_cuda_build.py --tb=short -p no:cacheprovider \
  2>&1 | tail -n 6

banner "convnet verify --backend cuda (every kernel against the float64 reference and PyTorch)"
t=$(slot 90 100)
timeout "$t" python -c "import sys; from convnet.cli import main; sys.exit(main(sys.argv[1:]))" \
  verify --backend cuda 2>&1 | tail -n 70

banner "benchmarks (benchmarks/bench_gpu.py)"
t=$(slot 200 5)
# its own budget ends the cases early and still prints the table; timeout is the backstop
timeout "$t" python benchmarks/bench_gpu.py --budget $(( t - 25 )) --out "$OUTDIR/gpu_bench.txt"
status=$?
if [ "$status" -ne 0 ]; then
  echo "bench_gpu.py exit status $status (124 = timed out after ${t}s)"
  # the table is the part to keep: print whatever the script wrote before stopping
  [ -f "$OUTDIR/gpu_bench.txt" ] && sed -n '/^=====/,$p' "$OUTDIR/gpu_bench.txt"
fi
echo "gpu_check.sh done in $(( SECONDS - START ))s"
