#!/usr/bin/env bash
# The benchmark scripts on a GPU, one after the other, each under a time limit; the tables go to $OUT/gpu.md
# (or ./gpu.md). Run from the repository root on a CUDA machine that has torch, transformers, scikit-image and
# scikit-learn; missing pure-Python packages (captum, array-api-compat, the EfficientNet weights) can be put as
# wheels in .whl/ and are installed to /tmp/site first.
set -u
out="${OUT:-.}/gpu.md"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# Quantus imports these at load time but the metrics benchmarked never call them: empty stand-ins where missing
for mod in cv2 pandas matplotlib; do
  python3 -c "import $mod" 2>/dev/null || { mkdir -p /tmp/site/$mod && : > /tmp/site/$mod/__init__.py && : > /tmp/site/$mod/pyplot.py; }
done
export PYTHONPATH="$PWD/src:$PWD/benchmarks:${PYTHONPATH:-}" BENCH_DEVICE=cuda PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out"
run() {  # run SECONDS SCRIPT ARGS...
  local limit=$1; shift
  echo -e "\n## $*\n" | tee -a "$out"
  timeout "$limit" python3 "$@" 2>&1 | grep -v -i warn | tee -a "$out"
}
for spec in ${GPU_SUITE:-gradients cam gradient_family lrp transformers rise generation faithfulness passes ig_adaptive}; do
  case $spec in
    gradients) run 90 benchmarks/bench_gradients.py --batch-size 50 ;;
    cam) run 90 benchmarks/bench_cam.py --batch-size 128 ;;
    gradient_family) run 60 benchmarks/bench_gradient_family.py --images 32 --batch-size 32 ;;
    lrp) run 60 benchmarks/bench_lrp.py --images 32 ;;
    transformers) run 90 benchmarks/bench_transformers.py --images 8 --batch-size 32 ;;
    rise) run 60 benchmarks/bench_rise.py --device gpu --masks 4000 --batch-size 250 ;;
    generation) run 120 benchmarks/bench_generation.py --repeats 2 --skip-same-answer ;;
    faithfulness) run 120 benchmarks/bench_faithfulness.py --device cuda:0 --batch-size 1024 ;;
    passes) run 150 benchmarks/bench_passes.py --batch-size 256 --scorecam-repeats 2 ;;
    ig_adaptive) run 150 benchmarks/bench_ig_adaptive.py --images 20 --batch-size 64 --plot "${OUT:-.}/ig_adaptive_gpu.png" ;;
    *) run 120 "benchmarks/bench_$spec.py" ;;
  esac
done
