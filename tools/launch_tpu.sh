#!/usr/bin/env bash
# Create a Cloud TPU VM (single host or pod slice), install jaxprompt on every worker and
# run `jaxprompt train` on all of them. --dry-run prints every command instead.
#
#   tools/launch_tpu.sh --name pt-xxl --zone europe-west4-a --type v3-32 \
#     --gin runs/prompt_tuning.gin --output gs://my-bucket/runs/rte-xxl \
#     --model gs://t5-data/pretrained_models/t5x/t5_1_1_lm100k_xxl/checkpoint_1100000 \
#     --task super_glue_rte --data_dir gs://my-bucket/superglue [--dry-run]
#
# Checkpoints (orbax), metrics.jsonl, TensorBoard events and learning_curve.png go to the
# --output directory; with a gs:// bucket mount it on every worker (gcsfuse, below) so the
# plain files land there too. Watch with: tensorboard --logdir <output>/tensorboard
set -euo pipefail

NAME=""; ZONE=""; TYPE="v3-8"; VERSION="tpu-ubuntu2204-base"; GIN="runs/prompt_tuning.gin"
OUTPUT=""; MODEL=""; TASK=""; DATA_DIR=""; PACKAGE="jaxprompt[tpu,data]"; DRY_RUN=0; EXTRA=()
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

run gcloud compute tpus tpu-vm create "$NAME" --zone "$ZONE" --accelerator-type "$TYPE" \
  --version "$VERSION"
on_all "pip install -U pip && pip install '$PACKAGE'"
MOUNT="$OUTPUT"
if [[ "$OUTPUT" == gs://* ]]; then
  BUCKET="${OUTPUT#gs://}"; BUCKET="${BUCKET%%/*}"; MOUNT="/mnt/$BUCKET/${OUTPUT#gs://$BUCKET/}"
  on_all "sudo apt-get install -y gcsfuse && sudo mkdir -p /mnt/$BUCKET && sudo gcsfuse --implicit-dirs $BUCKET /mnt/$BUCKET"
fi
run gcloud compute tpus tpu-vm scp --recurse "$(dirname "$0")/../gin_configs" \
  "$NAME:~/gin_configs" --zone "$ZONE" --worker="$WORKERS"
on_all "jaxprompt train --multihost=$MULTIHOST --gin_file=\$HOME/gin_configs/$GIN \
  --gin.train.model=\"'$MODEL'\" --gin.train.task=\"'$TASK'\" \
  ${DATA_DIR:+--gin.train.data_dir=\"'$DATA_DIR'\"} --gin.train.dtype=\"'bfloat16'\" \
  --gin.StepConfig.enable_dropout=True --output_dir=$MOUNT ${EXTRA[*]:-}"
echo "# when done: gcloud compute tpus tpu-vm delete $NAME --zone $ZONE"
