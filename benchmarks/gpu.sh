#!/usr/bin/env bash
# Every GPU row of docs/PERFORMANCE.md, both stages, on a machine with one GPU, in under 8 minutes:
#
#   benchmarks/gpu.sh OUT_DIR                     # paper configs on the GPU; Markdown tables into OUT_DIR
#   benchmarks/gpu.sh OUT_DIR --device cpu --tiny # a dry run of every step on CPU with tiny models (~2-4 min)
#
# Steps, in order of priority (each writes OUT_DIR/<step>.md, its stderr to OUT_DIR/<step>.log):
#   stage1_batch2       the paper VAE's training step (benchmarks/train_step.py), 256x256, batch 2: fp32, bf16
#   stage2_sampling_*   s/map at 1, 5 and 20 steps, both formulations, paper denoiser + paper VAE, batch 8
#                       (benchmarks/sampling.py): fp32, bf16, bf16 with a compiled denoiser
#   stage2_train_step_* the second stage's training step (benchmarks/ldm_train_step.py, when it exists:
#                       --config configs/radiodiff_ldm.yaml --vae-config configs/radiodiff_vae.yaml --size 256
#                       --batch-size 32 --steps S --warmup W --variants V [dotted.key=value ...]):
#                       bf16 (latents on the fly, encoded, flow matching), fp32 and bf16 + compile (on the fly)
#   stage1_max_batch    the largest batch that fits (benchmarks/max_batch.py, bf16), then bf16 and bf16 + compile
#                       at that batch
# Every row has images/s (or s/map) and, from the counted FLOPs (attention included, benchmarks/flops.py) and the
# GPU's dense peak (the table in train_step.py), the fraction of peak. Each step runs under `timeout` with its own
# limit, and the whole under GPU_BENCH_BUDGET_S seconds (default 450): a step that would start with less than
# 20 s left is skipped, and its table says so. GPU_BENCH_ONLY (comma-separated name prefixes, e.g.
# "stage2_train_step,stage1_max_batch") runs only the steps it names, for a rerun that completes an earlier one.
# Exit status: the number of steps that did not complete.
set -uo pipefail

usage() { echo "usage: $0 OUT_DIR [--device cuda|cpu] [--tiny]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
DEVICE=cuda
TINY=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) [ $# -ge 2 ] || usage; DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    *) echo "error: unknown option $1" >&2; usage ;;
  esac
done
case $DEVICE in cuda|cpu) ;; *) echo "error: --device $DEVICE: expected cuda or cpu" >&2; exit 2 ;; esac

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 2
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
if [ "$DEVICE" = cpu ]; then
  export CUDA_VISIBLE_DEVICES=""  # the scripts pick cuda whenever torch sees one
elif ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA device is visible; give --device cpu --tiny for a dry run" >&2
  exit 2
fi
mkdir -p "$OUT" || exit 2

if [ "$TINY" = 1 ]; then
  VAE_CONFIG=configs/quickstart.yaml; LDM_CONFIG=configs/ldm_quickstart.yaml; SIZE=32; STEPS=1; WARMUP=1
  LDM_VAE_CONFIG=configs/quickstart.yaml
  VAE_OVERRIDES=("model.block_out_channels=[8, 16]" model.norm_num_groups=4 model.layers_per_block=1
                 discriminator.ndf=8 discriminator.n_layers=2)
  LDM_OVERRIDES=(denoiser.preset=tiny)
  SAMPLING=(--preset tiny --vae quickstart --size 32 --steps 1 5 20 --batch-size 2 --repeats 1)
  BATCH_LIMIT=8; LDM_BATCH=2
  # compiling takes minutes on CPU: the dry run checks the eager paths and the flags, not the compiler
  MAX_BATCH_VARIANTS=bf16; COMPILE_FLAG=(); LDM_COMPILE=()
else
  VAE_CONFIG=configs/radiodiff_vae.yaml; LDM_CONFIG=configs/radiodiff_ldm.yaml; SIZE=256; STEPS=5; WARMUP=2
  LDM_VAE_CONFIG=configs/radiodiff_vae.yaml
  VAE_OVERRIDES=(); LDM_OVERRIDES=()
  SAMPLING=(--preset paper --vae paper --size 256 --steps 1 5 20 --batch-size 8 --repeats 2)
  BATCH_LIMIT=512; LDM_BATCH=32
  MAX_BATCH_VARIANTS=bf16,bf16_compile; COMPILE_FLAG=(--compile); LDM_COMPILE=(train.compile=true)
fi

START=$(date +%s)
BUDGET=${GPU_BENCH_BUDGET_S:-450}
FAILED=0

# step NAME LIMIT_S COMMAND...: stdout to OUT/NAME.md, stderr to OUT/NAME.log, at most LIMIT_S seconds
step() {
  local name=$1 limit=$2 left rc
  shift 2
  if [ -n "${GPU_BENCH_ONLY:-}" ]; then
    local prefix selected=0
    IFS=, read -ra prefixes <<< "$GPU_BENCH_ONLY"
    for prefix in "${prefixes[@]}"; do [[ $name == "$prefix"* ]] && selected=1; done
    [ "$selected" = 1 ] || return 1
  fi
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -lt 20 ]; then
    echo "skipped: the ${BUDGET} s budget of benchmarks/gpu.sh was spent" > "$OUT/$name.md"
    FAILED=$((FAILED + 1)); return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (at most ${limit} s; $(( $(date +%s) - START )) s used)" >&2
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.md" 2> "$OUT/$name.log"
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "timed out after ${limit} s" >> "$OUT/$name.md"
  elif [ $rc -ne 0 ]; then
    echo "failed (exit $rc): $(tail -n 1 "$OUT/$name.log")" >> "$OUT/$name.md"
  fi
  [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
  return $rc
}

step stage1_batch2 120 "$PYTHON" benchmarks/train_step.py --config "$VAE_CONFIG" --size "$SIZE" --batch-size 2 \
  --steps "$STEPS" --warmup "$WARMUP" --variants fp32,bf16 "${VAE_OVERRIDES[@]}"

step stage2_sampling_fp32 60 "$PYTHON" benchmarks/sampling.py --device "$DEVICE" --dtype fp32 "${SAMPLING[@]}"
step stage2_sampling_bf16 60 "$PYTHON" benchmarks/sampling.py --device "$DEVICE" --dtype bf16 "${SAMPLING[@]}"
step stage2_sampling_bf16_compile 90 "$PYTHON" benchmarks/sampling.py --device "$DEVICE" --dtype bf16 \
  "${COMPILE_FLAG[@]}" "${SAMPLING[@]}"

LDM_STEP=(benchmarks/ldm_train_step.py --config "$LDM_CONFIG" --vae-config "$LDM_VAE_CONFIG" --size "$SIZE"
          --batch-size "$LDM_BATCH" --steps "$STEPS" --warmup "$WARMUP")
if [ -f benchmarks/ldm_train_step.py ]; then
  step stage2_train_step_bf16 120 "$PYTHON" "${LDM_STEP[@]}" --variants on_the_fly,encoded,flow_matching \
    train.mixed_precision=bf16 "${LDM_OVERRIDES[@]}"
  step stage2_train_step_fp32 60 "$PYTHON" "${LDM_STEP[@]}" --variants on_the_fly "train.mixed_precision='no'" \
    "${LDM_OVERRIDES[@]}"
  step stage2_train_step_bf16_compile 90 "$PYTHON" "${LDM_STEP[@]}" --variants on_the_fly \
    train.mixed_precision=bf16 "${LDM_COMPILE[@]}" "${LDM_OVERRIDES[@]}"
else
  echo "not run: benchmarks/ldm_train_step.py does not exist in this checkout" > "$OUT/stage2_train_step_bf16.md"
fi

if step stage1_max_batch_search 120 "$PYTHON" benchmarks/max_batch.py --config "$VAE_CONFIG" --size "$SIZE" \
     --variant bf16 --limit "$BATCH_LIMIT" "${VAE_OVERRIDES[@]}"; then
  MAX_BATCH=$(tail -n 1 "$OUT/stage1_max_batch_search.md")
  if [ "${MAX_BATCH:-0}" -gt 0 ] 2>/dev/null; then
    step stage1_max_batch 150 "$PYTHON" benchmarks/train_step.py --config "$VAE_CONFIG" --size "$SIZE" \
      --batch-size "$MAX_BATCH" --steps "$STEPS" --warmup "$WARMUP" --variants "$MAX_BATCH_VARIANTS" \
      "${VAE_OVERRIDES[@]}"
  fi
fi

{
  echo "# benchmarks/gpu.sh on $("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')")"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - START )) s, torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), $FAILED step(s) incomplete"
  for table in stage1_batch2 stage1_max_batch_search stage1_max_batch stage2_sampling_fp32 stage2_sampling_bf16 \
               stage2_sampling_bf16_compile stage2_train_step_bf16 stage2_train_step_fp32 \
               stage2_train_step_bf16_compile; do
    [ -f "$OUT/$table.md" ] || continue
    echo; echo "## $table"; echo; cat "$OUT/$table.md"
  done
} > "$OUT/summary.md"
echo "wrote $OUT/summary.md" >&2
exit "$FAILED"
