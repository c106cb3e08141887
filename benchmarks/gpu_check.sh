#!/usr/bin/env bash
# One GPU verification run, <= 10 minutes on an H200, no internet: the `-m gpu` kernel tests, then the
# attention benchmarks at recommender shapes (B=128, T=S=200, N in {1,2}, H in {50,64}, bf16 and fp32;
# target attention T=100 vs S=200; attention_pool at B in {128, 1024, 8192}).
#
#   benchmarks/gpu_check.sh OUTDIR        # PYTHON=/path/to/python to choose the interpreter
#
# jax_triton missing? It is installed from wheels in .whl/ (ignored by git). Fill that folder where
# there is internet:  pip download jax-triton==0.3.1 --no-deps -d .whl   (add absl-py if the GPU machine
# lacks it). A CUDA jax and triton (3.6.0 on the H200 machine) must already be installed.
# Writes OUTDIR/: env.txt, gpu_tests.log, bench_<name>.csv + .log, results.md (the CSVs as markdown).
# Without a GPU (the CPU dry run tested in CI) every GPU step says why it skips, and the script exits 0.
# Exit status: 1 if a test or a benchmark's correctness check failed.
set -uo pipefail

OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
status=0
say() { echo "gpu_check: $*"; }

# Benchmarks, one per line: "name|command". The command writes the CSV named by $CSV.
# benchmarks/bench_linear_ce.py (the linear cross-entropy kernels) is not in this list: each line may take up to
# 330 s of a lent GPU's time, so run it on its own ("linear_ce|$PY benchmarks/bench_linear_ce.py --out \$CSV").
BENCHMARKS=(
  "attention|$PY benchmarks/bench_attention.py --shapes recsys --repeats 10 --out \$CSV"
)

# 1. jax_triton, offline
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('jax_triton') is None)"; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    say "jax_triton missing: installing from .whl/"
    "$PY" -m pip install --no-index --no-deps .whl/*.whl || say "installing .whl/*.whl failed"
  else
    say "jax_triton missing and .whl/ is empty (fill it: pip download jax-triton==0.3.1 --no-deps -d .whl)"
  fi
fi

# 2. the environment
"$PY" - >"$OUT/env.txt" 2>&1 <<'EOF'
import importlib.metadata as md
import jax
print("jax backend:", jax.default_backend(), jax.devices())
for name in ("jax", "jaxlib", "jax-triton", "triton", "numpy"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "absent")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi >>"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

GPU_READY=$("$PY" -c "
import importlib.util, jax
gpu = jax.default_backend() == 'gpu'
jt = importlib.util.find_spec('jax_triton') is not None
print('yes' if gpu and jt else ('no GPU visible to JAX' if not gpu else 'jax_triton is not installed'))
" 2>/dev/null || echo "jax failed to import")

{
  echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
} >"$OUT/results.md"

if [ "$GPU_READY" != "yes" ]; then
  say "skipping the GPU tests and benchmarks: $GPU_READY"
  echo "GPU steps skipped: $GPU_READY" >>"$OUT/results.md"
  exit 0
fi

# 3. the GPU tests (backend triton vs the reference at HIGHEST precision)
say "pytest -m gpu tests/kernels"
timeout 240 "$PY" -m pytest -m gpu tests/kernels -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
test_rc=${PIPESTATUS[0]}
[ "$test_rc" -ne 0 ] && status=1
echo "- \`pytest -m gpu tests/kernels\`: $(tail -n 1 "$OUT/gpu_tests.log") (exit $test_rc)" >>"$OUT/results.md"

# 4. the benchmarks, each after its own correctness check
csvs=()
for entry in "${BENCHMARKS[@]}"; do
  name=${entry%%|*}
  CSV="$OUT/bench_$name.csv"
  say "benchmark $name"
  timeout 330 bash -c "CSV='$CSV'; ${entry#*|}" 2>&1 | tee "$OUT/bench_$name.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && status=1
  echo "- benchmark $name: exit $rc" >>"$OUT/results.md"
  [ -s "$CSV" ] && csvs+=("$CSV")
done

echo >>"$OUT/results.md"
[ "${#csvs[@]}" -gt 0 ] && "$PY" benchmarks/markdown_table.py "${csvs[@]}" >>"$OUT/results.md"
say "wrote $OUT/results.md"
exit $status
