#!/usr/bin/env bash
# Runs N processes of one training job on this machine, talking through
# jax.distributed exactly as the processes of a multi-host cluster job do
# (coordinator address, process count and id; cross-process collectives).
#
#   launch/local_multiprocess.sh 2 --config=configs/toy_2d.py --workdir=runs/toy_mp
#
# On CPU each process contributes its local devices (one by default; set
# XLA_FLAGS=--xla_force_host_platform_device_count=K for K per process).
set -euo pipefail
NUM_PROCESSES="${1:?usage: $0 NUM_PROCESSES [scorejax.main flags...]}"
shift
PORT="${JAX_COORDINATOR_PORT:-$((20000 + RANDOM % 20000))}"
export JAX_COORDINATOR_ADDRESS="127.0.0.1:${PORT}"
export JAX_NUM_PROCESSES="${NUM_PROCESSES}"
PYTHON="${PYTHON:-python}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for ((i = 0; i < NUM_PROCESSES; i++)); do
  JAX_PROCESS_ID="$i" "$PYTHON" -m scorejax.main "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
