#!/usr/bin/env bash
# Training on a Cloud TPU VM pod slice: the same command runs on every worker
# (gcloud --worker=all); jax.distributed.initialize() discovers the pod itself.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_pod.sh \
#       --config=configs/ve_cifar10.py --workdir=gs://my-bucket/runs/ve
#
# The repository must be at the same path on every worker (e.g. cloned by a
# first `--command` run), and --workdir on storage all workers share (GCS).
# Preempted (spot) slices resume from the last checkpoint when rerun.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO_DIR="${REPO_DIR:-~/scorejax}"
ARGS=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  set -e
  cd $REPO_DIR
  [ -d .venv ] || (python3 -m venv .venv && .venv/bin/pip install -q -e '.[tpu]')
  # Exit code 75: saved and stopped by SIGTERM (a maintenance event); resume in place.
  while :; do
    rc=0; .venv/bin/python -m scorejax.main$ARGS || rc=\$?
    [ \$rc -eq 75 ] || exit \$rc
    echo 'scorejax: preempted after saving; resuming'
  done
"
