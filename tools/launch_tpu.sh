#!/usr/bin/env bash
# Plan, then create a Cloud TPU VM (single host or pod slice), install jaxprompt on every
# worker and run `jaxprompt train` on all of them with the same flags that were planned.
#
#   tools/launch_tpu.sh --name pt-xxl --zone europe-west4-a --type v3-32 \
#     --gin runs/paper_xxl_v3_32.gin --output gs://my-bucket/runs/rte-xxl \
#     --model gs://t5-data/pretrained_models/t5x/t5_1_1_lm100k_xxl/checkpoint_1100000 \
#     --task super_glue_rte --data_dir gs://my-bucket/superglue [--dry-run] [-- --gin.K=V ...]
#
# First `jaxprompt plan` compiles the very step for --type on this machine (no TPU; needs
# pip install 'jaxprompt[tpu]'; --plan_model names a preset or local copy when --model is
# not readable here) and no VM is created when it does not fit; --skip_plan overrides.
# --dry-run runs the plan and prints every other command instead of running it.
#
# Checkpoints (orbax), metrics.jsonl, TensorBoard events and learning_curve.png go to the
# --output directory; with a gs:// bucket mount it on every worker (gcsfuse, below) so the
# plain files land there too. Watch with: tensorboard --logdir <output>/tensorboard
set -euo pipefail

NAME=""; ZONE=""; TYPE="v3-8"; VERSION="tpu-ubuntu2204-base"; GIN="runs/prompt_tuning.gin"
OUTPUT=""; MODEL=""; TASK=""; DATA_DIR=""; PACKAGE="jaxprompt[tpu,data]"; DRY_RUN=0; EXTRA=()
PLAN_MODEL=""; SKIP_PLAN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2;;
    --zone) ZONE="$2"; shift 2;;
    --type) TYPE="$2"; shift 2;;
    --version) VERSION="$2"; shift 2;;
    --gin) GIN="$2"; shift 2;;
    --output) OUTPUT="$2"; shift 2;;
    --model) MODEL="$2"; shift 2;;
    --task) TASK="$2"; shift 2;;
    --data_dir) DATA_DIR="$2"; shift 2;;
    --package) PACKAGE="$2"; shift 2;;   # e.g. a wheel URL or git+https://...
    --dry-run) DRY_RUN=1; shift;;
    --plan_model) PLAN_MODEL="$2"; shift 2;;
    --skip_plan) SKIP_PLAN=1; shift;;
    --) shift; EXTRA=("$@"); break;;
    *) echo "unknown flag $1" >&2; exit 2;;
  esac
done
for required in NAME ZONE OUTPUT MODEL TASK; do
  if [[ -z "${!required}" ]]; then echo "missing --${required,,}" >&2; exit 2; fi
done

# Single-host slices (one VM: v2-8, v3-8, v4-8, v5e up to 8 chips, v6e up to 8 chips) run
# without jax.distributed; pod slices (more workers) initialise it on every worker.
case "$TYPE" in
  v2-8|v3-8|v4-8|v5litepod-1|v5litepod-4|v5litepod-8|v5e-1|v5e-4|v5e-8|v6e-1|v6e-4|v6e-8)
    MULTIHOST=off; WORKERS=0;;
  *) MULTIHOST=auto; WORKERS=all;;
esac
echo "# $TYPE: $([[ $MULTIHOST == off ]] && echo 'single host (one VM)' || echo 'multi-host pod slice')"

run() { if [[ $DRY_RUN == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi; }
on_all() { run gcloud compute tpus tpu-vm ssh "$NAME" --zone "$ZONE" --worker="$WORKERS" --command "$1"; }

# The run's own flags, the same for the plan and for every worker.
GIN_FILE="$GIN"; [[ -f "$GIN" ]] && GIN_FILE="\$HOME/$(basename "$GIN")"
RUN_FLAGS=(--gin.train.task="'$TASK'")
[[ -n "$DATA_DIR" ]] && RUN_FLAGS+=(--gin.train.data_dir="'$DATA_DIR'")
RUN_FLAGS+=("${EXTRA[@]}")

if [[ $SKIP_PLAN == 0 ]]; then
  echo "# planning the step for $TYPE (jaxprompt plan; --skip_plan to skip)"
  if ! jaxprompt plan --gin_file="$GIN" --gin.train.model="'${PLAN_MODEL:-$MODEL}'" \
      "${RUN_FLAGS[@]}" --topology "$TYPE"; then
    echo "# not launching: the plan above does not fit $TYPE (or could not be made); change" \
         "the setting it names, or pass --skip_plan to launch anyway." >&2
    exit 1
  fi
fi

run gcloud compute tpus tpu-vm create "$NAME" --zone "$ZONE" --accelerator-type "$TYPE" \
  --version "$VERSION"
on_all "pip install -U pip && pip install '$PACKAGE'"
MOUNT="$OUTPUT"
if [[ "$OUTPUT" == gs://* ]]; then
  BUCKET="${OUTPUT#gs://}"; BUCKET="${BUCKET%%/*}"; MOUNT="/mnt/$BUCKET/${OUTPUT#gs://$BUCKET/}"
  on_all "sudo apt-get install -y gcsfuse && sudo mkdir -p /mnt/$BUCKET && sudo gcsfuse --implicit-dirs $BUCKET /mnt/$BUCKET"
fi
# The shipped gin files come with the package; a gin file of your own is copied over.
if [[ -f "$GIN" ]]; then
  run gcloud compute tpus tpu-vm scp "$GIN" "$NAME:~/" --zone "$ZONE" --worker="$WORKERS"
fi
on_all "jaxprompt train --multihost=$MULTIHOST --gin_file=$GIN_FILE \
  --gin.train.model=\"'$MODEL'\" $(printf '%q ' "${RUN_FLAGS[@]}") --output_dir=$MOUNT"
echo "# when done: gcloud compute tpus tpu-vm delete $NAME --zone $ZONE"
