#!/usr/bin/env bash
# `make gpu-check`: lenscope on a CUDA GPU, in one short run (a few minutes on an H100).
#
# 1. the device tests: every test marked `gpu` (the cuda cases of tests.devices.DEVICES) and the
#    device/CLI files whole, with the reason of every skip;
# 2. the benchmarks on the GPU, each with `--device cuda` and a time limit: the forward against
#    transformers (benchmarks/forward.py), the node table (why.py), the SAE training step
#    (sae_train.py) and the harvest (harvest.py);
# 3. one JSON object on stdout: the test outcome and every benchmark's figures (also written to
#    $GPU_CHECK_OUT/gpu-check.json, default lenscope-out/gpu-check).
#
# No GPU (torch.cuda.is_available() is False) is a failure, exit code 2: this check exists to run
# where there is one. Any failed test or benchmark makes the exit code 1 (the JSON still prints).
# PY picks the interpreter (make passes the project's venv); GPU_CHECK_LIMIT the seconds each
# benchmark may take (default 90: four of them and the tests fit in 8 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT_DIR=${GPU_CHECK_OUT:-lenscope-out/gpu-check}
LIMIT=${GPU_CHECK_LIMIT:-90}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu-check FAILED: no CUDA GPU here (torch.cuda.is_available() is False, torch" \
        "$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1))" >&2
    exit 2
fi
mkdir -p "$OUT_DIR"
status=0
started=$(date +%s)

echo "== device tests" >&2
"$PY" -m pytest -q -rs -p no:cacheprovider -m gpu tests --junitxml="$OUT_DIR/gpu-tests.xml" >&2
tests_gpu=$?
"$PY" -m pytest -q -rs -p no:cacheprovider tests/test_device.py tests/cli/test_cli_device.py \
    --junitxml="$OUT_DIR/device-tests.xml" >&2
tests_device=$?
[ "$tests_gpu" -eq 0 ] && [ "$tests_device" -eq 0 ] || status=1

for bench in forward why sae_train harvest; do
    echo "== benchmarks/$bench.py --device cuda" >&2
    args=(--device cuda)
    case $bench in
        why) args+=(5) ;;
        harvest) args+=(--threads 1) ;;
    esac
    if ! timeout "$LIMIT" "$PY" "benchmarks/$bench.py" "${args[@]}" \
        >"$OUT_DIR/$bench.json" 2>"$OUT_DIR/$bench.log"; then
        echo "benchmarks/$bench.py failed or ran past ${LIMIT}s: see $OUT_DIR/$bench.log" >&2
        tail -n 5 "$OUT_DIR/$bench.log" >&2
        status=1
    fi
done

"$PY" - "$OUT_DIR" "$tests_gpu" "$tests_device" "$(($(date +%s) - started))" <<'PYEOF'
import json
import sys
from pathlib import Path

import torch

out, tests_gpu, tests_device, seconds = Path(sys.argv[1]), *map(int, sys.argv[2:])
report = {
    "gpu": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "seconds": seconds,
    "tests": {"gpu_marked": "passed" if tests_gpu == 0 else f"failed (pytest exit {tests_gpu})",
              "device_files": "passed" if tests_device == 0 else f"failed (pytest exit {tests_device})"},
}
for name in ("forward", "why", "sae_train", "harvest"):
    text = (out / f"{name}.json").read_text() if (out / f"{name}.json").is_file() else ""
    try:
        report[name] = json.loads(text)
    except json.JSONDecodeError:
        report[name] = {"error": "no JSON: see " + str(out / f"{name}.log")}
(out / "gpu-check.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
PYEOF
echo "gpu-check: $([ $status -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - started)) s;" \
    "figures in $OUT_DIR/gpu-check.json" >&2
exit $status
