#!/usr/bin/env bash
# The experiment in time-limited slices on an offline machine, results carried between slices.
#
#   launch/offline_gpu.sh prepare                 # here: what the machine lacks, in .whl/ .carry/
#   OUT=DIR launch/offline_gpu.sh run             # there, in a copy of this tree: see below
#   launch/offline_gpu.sh merge DIR/results.tgz   # here: keep what came back
#
# For a machine with no network (the GPU image has jax, flax, optax, orbax but not
# ml-collections or tensorboardX; no dataset can be downloaded) to which a copy of this tree
# and a few folders travel, and from which only small files come back. `run` installs the
# carried wheels, unpacks the carried data, runs the GPU benchmarks, then as much of the
# experiment (python -m rwjax.experiment) as fits its deadline, starting from the results of
# earlier sessions (RESULTS): the experiment skips every finished run and evaluation. Whatever
# happened, it writes the report from the runs that exist and packs them, without checkpoints,
# into OUT/results.tgz: the cumulative results, which `merge` keeps in
# docs/experiment_paper/ (results.tgz, report.md, results.json, figures/) for the next session.
# A run cut off by the deadline keeps its finished evaluations; its training starts again from
# step 0 next time (no checkpoint comes back; with the paper's constant learning rate that
# gives the same network as a straight run).
#
# `prepare` (here): .whl/ (ml-collections and tensorboardX wheels for Python 3.12) and .carry/
# (CIFAR-10 and MNIST as the tarballs of SHARED, stage II MEA recordings), both git-ignored,
# ~55 MB; carry both (the device tool's carry: [".whl", ".carry"]).
#
# `run` settings (environment):
#   OUT         where the files that come back go (required): session.txt (the summary
#               table, also printed last), bench.jsonl, experiment.log, report.md, results.tgz
#   SCALE       configs/experiment.py scale (paper)
#   ONLY        arms of this session (random_init,paper_movie: claims 1-3 need only these)
#   DEADLINE_S  seconds for the whole command (360: within a 15-minute lease a failed call
#               leaves time for a second); the experiment stops RESERVE_S (60) before it, for
#               the report and the packing
#   BENCH       benchmarks to run first, BENCH_S (90) seconds each, their JSON in bench.jsonl
#               (none): 'waves' (bench/train_step.py --batching=waves: the paper's whole-wave
#               step, 64 wide), 'stream' (the simulator-fed step), or both ('waves stream')
#   EXTRA       more flags for rwjax.experiment, separated by spaces ('--config.eval_steps=(0.0,1.0)':
#               each network evaluated at the end of its training only, the claims' step; a
#               session's results join earlier ones only under the same EXTRA, SCALE and
#               paths, otherwise the experiment refuses them and says which keys differ)
#   RESULTS     earlier results (docs/experiment_paper/results.tgz when it exists)
#   WORK        the experiment's directory (/tmp/rwjax_experiment); keep it fixed: the runs'
#               records name paths inside it, and a run of another record is refused
#   KEEP        1: WORK is kept, not emptied and refilled from RESULTS (the next slice on the
#               same machine resumes an interrupted run from its checkpoints)
#   DATA        where the carried data is unpacked (/tmp/rwjax_data)
#   PYTHON      python3
# `merge` copies results.tgz and unpacks its report.md, results.json and figures/ into DEST
# (docs/experiment_paper).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "offline_gpu.sh: $*" >&2; exit 2; }

prepare() {
  local shared=${SHARED:-../shared/data} py=${PYTHON}
  [[ -x .venv/bin/python ]] && py=.venv/bin/python  # rwjax's reader picks the recordings
  for f in cifar10-jpeg.tar.gz mnist-png.tar.gz; do
    [[ -f $shared/$f ]] || die "$shared/$f not found; set SHARED to the folder holding" \
      "cifar10-jpeg.tar.gz and mnist-png.tar.gz (image folders split/label/file, tarred)"
  done
  rm -rf .whl .carry && mkdir -p .whl .carry/mea || exit
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d .whl ml-collections tensorboardX \
    || die 'pip download failed (the wheels of ml-collections and tensorboardX)'
  cp "$shared/cifar10-jpeg.tar.gz" "$shared/mnist-png.tar.gz" .carry/ || exit
  if [[ -d $shared/mea-maccione2014 ]]; then  # the experiment's recorded arm reads stage II only
    "$py" -c '
import glob, shutil, sys
from rwjax.waves import recorded
for p in sorted(glob.glob(sys.argv[1] + "/*.h5")):
  age = recorded.load_mea(p).age_days
  if age is not None and age <= int(sys.argv[2]):
    shutil.copy(p, ".carry/mea/")
' "$shared/mea-maccione2014" "${MAX_AGE_DAYS:-9}" || exit
  fi
  du -sh .whl .carry
  echo 'carry: [".whl", ".carry"]; then: OUT=$OUT launch/offline_gpu.sh run'
}

# bench/train_step.py on the paper's network: whole-wave batches (the paper's step, 64 wide),
# the simulator-fed stream.
declare -A BENCH_ARGS=([waves]='--batching=waves --steps=10'
                       [stream]='--steps=20 --warmup_s=20 --calibration_s=5')

ROWS=()
row() { ROWS+=("$(printf '%-22s %6s s  %s' "$1" "$2" "$3")"); }

summary() {
  { echo "offline_gpu.sh run: SCALE=$SCALE ONLY=$ONLY DEADLINE_S=$DEADLINE_S EXTRA=$EXTRA"
    printf '%-22s %8s  %s\n' phase time result
    printf '%s\n' "${ROWS[@]}"; } | tee "$OUT/session.txt"
}

run() {
  [[ -n ${OUT:-} ]] || die 'set OUT to the folder whose files come back'
  SCALE=${SCALE:-paper} ONLY=${ONLY:-random_init,paper_movie} KEEP=${KEEP:-}
  EXTRA=${EXTRA-'--config.eval_steps=(0.0,1.0)'}
  DEADLINE_S=${DEADLINE_S:-360} RESERVE_S=${RESERVE_S:-60} BENCH=${BENCH:-}
  BENCH_S=${BENCH_S:-90} WORK=${WORK:-/tmp/rwjax_experiment} DATA=${DATA:-/tmp/rwjax_data}
  RESULTS=${RESULTS-docs/experiment_paper/results.tgz}
  case $(realpath -m "$WORK") in  # it is emptied first
    / | "$ROOT" | "$HOME") die "WORK=$WORK would be deleted; name a directory of its own" ;;
  esac
  local name
  for name in $BENCH; do
    [[ -n ${BENCH_ARGS[$name]:-} ]] || die "BENCH: unknown benchmark '$name'; use" \
      "'waves', 'stream' or ''"
  done
  mkdir -p "$OUT" "$DATA" || exit
  local t rc
  t=$SECONDS
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  if compgen -G '.whl/*.whl' >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$DATA/site" .whl/*.whl || die 'installing the carried wheels failed'
    export PYTHONPATH="$PYTHONPATH:$DATA/site"
  fi
  for f in .carry/*.tar.gz; do
    [[ -e $f ]] && tar xzf "$f" -C "$DATA"
  done
  local flags=(--config="configs/experiment.py:$SCALE" --workdir="$WORK" --config.only="$ONLY")
  [[ -d $DATA/cifar10 ]] && flags+=(--config.cifar10="$DATA/cifar10")
  [[ -d $DATA/mnist ]] && flags+=(--config.mnist="$DATA/mnist")
  if [[ -d .carry/mea ]]; then  # at a fixed path: the recorded arm's record names the folder
    rm -rf "$DATA/mea" && cp -r .carry/mea "$DATA/" && flags+=(--config.recordings="$DATA/mea")
  fi
  # shellcheck disable=SC2206  # EXTRA: flags separated by spaces
  flags+=($EXTRA)
  if [[ $KEEP != 1 || ! -d $WORK ]]; then
    rm -rf "$WORK" && mkdir -p "$WORK" || exit
    if [[ -n $RESULTS && -f $RESULTS ]]; then
      tar xzf "$RESULTS" -C "$WORK" || die "$RESULTS is not a results.tgz of this script"
    fi
  fi
  row setup $((SECONDS - t)) "$("$PYTHON" -c 'import jax; print(jax.__version__, jax.devices())' 2>&1 | tail -1)"

  : > "$OUT/bench.jsonl"
  for name in $BENCH; do
    t=$SECONDS
    timeout -k 10 "$BENCH_S" "$PYTHON" bench/train_step.py ${BENCH_ARGS[$name]} \
      > "$OUT/bench_$name.out" 2>&1
    rc=$?
    grep '^{' "$OUT/bench_$name.out" | tail -1 >> "$OUT/bench.jsonl"
    row "bench $name" $((SECONDS - t)) "rc $rc$( ((rc == 124)) && echo ' (timed out)')"
    rm -f "$OUT/bench_$name.out"
  done

  t=$SECONDS
  local left=$((DEADLINE_S - RESERVE_S - SECONDS))
  ((left > 0)) || left=1
  timeout -k 20 "$left" "$PYTHON" -m rwjax.experiment "${flags[@]}" > "$OUT/experiment.log" 2>&1
  rc=$?
  local note
  note="$(grep -c 'done in' "$OUT/experiment.log") runs done,"
  note+=" $(grep -c 'finished before' "$OUT/experiment.log") finished before"
  ((rc == 124 || rc == 137)) && note+='; stopped at the deadline: run again to go on'
  row experiment $((SECONDS - t)) "rc $rc: $note"
  if ((rc != 0)); then  # killed or failed: the report from what exists
    t=$SECONDS
    "$PYTHON" -m rwjax.experiment "${flags[@]}" --config.report_only=True \
      >> "$OUT/experiment.log" 2>&1
    row report $((SECONDS - t)) "rc $?"
  fi

  t=$SECONDS
  local have=()
  for f in runs report.md report.html results.json figures; do
    [[ -e $WORK/$f ]] && have+=("$f")
  done
  # Everything but the checkpoints, TensorBoard files, the movie and the compiled programs.
  if ((${#have[@]})); then
    tar czf "$OUT/results.tgz" -C "$WORK" --exclude=checkpoints --exclude=tensorboard \
      "${have[@]}"
    rc=$?
    [[ -e $WORK/report.md ]] && cp "$WORK/report.md" "$OUT/"
    row pack $((SECONDS - t)) "rc $rc, $(du -h "$OUT/results.tgz" | cut -f1)"
  else
    row pack 0 'nothing to pack (no run started)'
  fi
  row total "$SECONDS" "deadline $DEADLINE_S s"
  summary
}

merge() {
  local src=${1:-} dest=${DEST:-docs/experiment_paper}
  [[ -f $src ]] || die "merge: pass the results.tgz that 'run' wrote to OUT"
  local n
  n=$(tar tzf "$src" 2>/dev/null | grep -c '/report.json$')
  ((n > 0)) || die "merge: $src holds no evaluation report (not a results.tgz of 'run')"
  mkdir -p "$dest/tmp" && tar xzf "$src" -C "$dest/tmp" || exit
  cp "$src" "$dest/results.tgz"
  rm -rf "$dest/figures"
  for f in report.md results.json figures; do
    [[ -e $dest/tmp/$f ]] && mv "$dest/tmp/$f" "$dest/"
  done
  rm -rf "$dest/tmp"
  echo "offline_gpu.sh: $dest/ holds $n evaluation reports"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  merge) merge "${2:-}" ;;
  *) usage ;;
esac
