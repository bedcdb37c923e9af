#!/bin/bash
# Run (or continue) `benchmarks/replicate.py all --jobs 2` in the background with the code frozen at
# one commit, so that later commits to the checkout cannot change the runs halfway (docs/replication.md).
#
#   bash benchmarks/replicate_frozen.sh [COMMIT]     # first launch: COMMIT (default HEAD) is recorded
#   bash benchmarks/replicate_frozen.sh              # later: continues with the recorded commit
#   bash benchmarks/replicate_frozen.sh --models du,bn,vae   # options for replicate.py: recorded in
#                                                    # replication/ARGS and reused when none are given
#
# The code is a detached git worktree at ../rep-code (beside the checkout, so that replicate.py finds
# ../shared/data); the workspace is ./replication (git-ignored); the processes run at nice 19 and
# use this checkout's .venv. Stop with: kill -INT $(cat replication/replicate.pid)
set -eu
cd "$(dirname "$0")/.."
root=$PWD
code=$(dirname "$root")/rep-code
mkdir -p replication
wanted=
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then wanted=$1; shift; fi
if [ $# -eq 0 ] && [ -f replication/ARGS ]; then
  mapfile -t saved < replication/ARGS
  set -- "${saved[@]}"
fi
if [ -f replication/CODE_COMMIT ]; then
  commit=$(cat replication/CODE_COMMIT)
  if [ -n "$wanted" ] && [ "$(git rev-parse "$wanted")" != "$commit" ]; then
    echo "replicate_frozen: replication/CODE_COMMIT says $commit; the runs must finish with it" >&2
    exit 2
  fi
else
  commit=$(git rev-parse "${wanted:-HEAD}")
fi
if ! git -C "$code" rev-parse HEAD >/dev/null 2>&1; then  # absent, or left by another clone
  rm -rf "$code" && git worktree prune && git worktree add --detach "$code" "$commit" >/dev/null
fi
if [ "$(git -C "$code" rev-parse HEAD)" != "$commit" ]; then
  echo "replicate_frozen: $code is at $(git -C "$code" rev-parse HEAD), not $commit" >&2
  exit 2
fi
echo "$commit" > replication/CODE_COMMIT
if [ $# -gt 0 ]; then printf '%s\n' "$@" > replication/ARGS; fi  # once the commit is accepted
PATH="$root/.venv/bin:$PATH" PYTHONPATH="$code" nohup nice -n 19 python "$code/benchmarks/replicate.py" all \
  --jobs 2 --work "$root/replication" "$@" >> replication/run.log 2>&1 &
echo "replicate_frozen: started (pid $!), code $commit, options: ${*:-none}; log: replication/run.log"
