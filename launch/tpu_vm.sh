#!/usr/bin/env bash
# Pre-trains on a Cloud TPU VM: one host (v4-8, v5e-8, ...) or every worker of a pod slice.
#
#   launch/tpu_vm.sh NAME ZONE WORKDIR [--config.x.y=v ...]
#
# 1. installs rwjax[gcs] and jax[tpu] on every worker (a git clone of REPO, or an update),
# 2. starts the same command on every worker, in the background, logging to ~/rwjax.log:
#      python -m rwjax.train --config=$CONFIG --workdir=WORKDIR --config.multihost=True ...
#    JAX finds the other workers itself (jax.distributed.initialize on a TPU VM).
#
# WORKDIR must be one directory every worker sees (checkpoints are written by all of them):
# on a pod slice a Cloud Storage path, gs://BUCKET/RUN (the documented way: no mount, every
# worker writes its checkpoint shards straight to the bucket; the TPU VM's service account
# needs roles/storage.objectAdmin on BUCKET); on a single host also any local path.
# Re-running the command resumes from WORKDIR's checkpoint; TPU maintenance events send
# SIGTERM, on which all workers save at the same step and exit.
#
# Environment: CONFIG (default configs/pretrain_waves.py), REPO (default: this clone's
# origin), BRANCH (default main), DRY_RUN=1 prints the gcloud commands instead of running.
# Follow a run: gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=0 --command='tail -f ~/rwjax.log'
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
NAME=$1 ZONE=$2 WORKDIR=$3
shift 3
CONFIG=${CONFIG:-configs/pretrain_waves.py}
BRANCH=${BRANCH:-main}
if [[ -z ${REPO:-} ]]; then
  REPO=$(git -C "$(dirname "$0")/.." remote get-url origin 2>/dev/null) || {
    echo "error: no REPO given and this clone has no origin remote; set REPO=<git url>" >&2
    exit 2; }
fi
q() { printf '%q ' "$@"; }  # shell-quotes the overrides for the remote command line

SETUP="set -e; if [ -d rwjax ]; then git -C rwjax fetch -q origin $(q "$BRANCH")&& git -C rwjax checkout -q FETCH_HEAD; \
else git clone -q -b $(q "$BRANCH")$(q "$REPO")rwjax; fi; \
cd rwjax && python3 -m venv .venv && .venv/bin/pip install -q -U pip && .venv/bin/pip install -q -e '.[gcs]' 'jax[tpu]'"
TRAIN="cd rwjax && nohup .venv/bin/python -m rwjax.train --config=$(q "$CONFIG")--workdir=$(q "$WORKDIR")--config.multihost=True $(q "$@")> ~/rwjax.log 2>&1 &"

run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then q "$@"; echo; else "$@"; fi
}
run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$SETUP"
run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$TRAIN"
