#!/usr/bin/env bash
# Stop the test cluster started by tests/support/slurm/start.sh and leave no daemon behind.
#
#   tests/support/slurm/stop.sh          # cancel its jobs, stop slurmd, slurmctld, munged
#   tests/support/slurm/stop.sh --purge  # ... and remove the state directory
#
# Only processes of this cluster are touched: the daemons named by the pid files in
# ${CEMENTSIM_SLURM_DIR:-/tmp/cementsim-slurm}, and slurmstepd processes whose environment names
# this cluster's slurm.conf. Safe to run when nothing is running. Exit 1 if a daemon survives.
set -euo pipefail

STATE=${CEMENTSIM_SLURM_DIR:-/tmp/cementsim-slurm}
CONF="$STATE/slurm.conf"
MUNGE_DIR="$STATE/munge"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { echo "cementsim-slurm: $*" >&2; }

purge=0
case "${1:-}" in
"") ;;
--purge) purge=1 ;;
*)
    log "ERROR: unknown argument '$1' (use --purge or nothing)"
    exit 2
    ;;
esac

if [[ ! -d $STATE ]]; then
    log "nothing to stop ($STATE does not exist)"
    exit 0
fi
exec 9>"$STATE/.lock"
flock -w 120 9 || log "WARNING: could not take $STATE/.lock; stopping anyway"

# live_pid PIDFILE NAME: print the pid in PIDFILE if it is a live process called NAME.
live_pid() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm ]] || return 1
    [[ $(<"/proc/$pid/comm") == "$name" ]] || return 1
    echo "$pid"
}

# stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 75); do
        [[ -d /proc/$pid ]] || return 0
        # A zombie of ours would never go; daemons are re-parented, so this is only a guard.
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 25); do
        [[ -d /proc/$pid ]] || return 0
        sleep 0.2
    done
}

# 1. Cancel this cluster's jobs while slurmctld still runs, so no job outlives the daemons.
if live_pid "$STATE/run/slurmctld.pid" slurmctld >/dev/null && [[ -f $CONF ]]; then
    export SLURM_CONF="$CONF"
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(timeout 5 squeue -h -o '%A' 2>/dev/null || true) ]] && break
            sleep 0.2
        done
    fi
fi

# 2. The daemons: slurmd, then slurmctld, then munged.
if pid=$(live_pid "$STATE/run/slurmd.pid" slurmd); then stop_pid "$pid" slurmd; fi
if pid=$(live_pid "$STATE/run/slurmctld.pid" slurmctld); then stop_pid "$pid" slurmctld; fi

# 3. Step daemons of this cluster left by jobs that could not be cancelled (slurmctld already gone):
#    their environment carries SLURM_CONF from slurmd, which start.sh runs with SLURM_CONF set to
#    this cluster's file. They ignore SIGTERM; kill each with the job processes below it.
descendants() { # print the pids of every process below $1
    local parent=$1 pid ppid
    while read -r pid ppid; do
        if [[ $ppid == "$parent" ]]; then
            echo "$pid"
            descendants "$pid"
        fi
    done < <(ps -e -o pid= -o ppid=)
}
for dir in /proc/[0-9]*; do
    [[ -r $dir/comm && $(<"$dir/comm") == slurmstepd ]] 2>/dev/null || continue
    tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF" || continue
    stepd=${dir#/proc/}
    mapfile -t victims < <(echo "$stepd"; descendants "$stepd")
    log "killing a leftover slurmstepd and its job processes: ${victims[*]}"
    kill -KILL "${victims[@]}" 2>/dev/null || true
done
for _ in $(seq 25); do
    pgrep -x slurmstepd >/dev/null 2>&1 || break
    alive=0
    for dir in /proc/[0-9]*; do
        [[ -r $dir/comm && $(<"$dir/comm") == slurmstepd ]] 2>/dev/null || continue
        [[ $(awk '{print $3}' "$dir/stat" 2>/dev/null) == Z ]] && continue
        tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF" && alive=1
    done
    ((alive)) || break
    sleep 0.2
done

if pid=$(live_pid "$MUNGE_DIR/munged.pid" munged); then stop_pid "$pid" munged; fi

# 4. Check.
left=()
for d in "run/slurmd.pid:slurmd" "run/slurmctld.pid:slurmctld" "munge/munged.pid:munged"; do
    if pid=$(live_pid "$STATE/${d%%:*}" "${d##*:}"); then left+=("${d##*:}($pid)"); fi
done
if ((${#left[@]})); then
    log "ERROR: still running: ${left[*]}"
    exit 1
fi
rm -f "$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid" "$MUNGE_DIR/munged.pid"

if ((purge)); then
    log "removing $STATE"
    exec 9>&-
    rm -rf "$STATE"
fi
log "stopped"
