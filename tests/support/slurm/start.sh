#!/usr/bin/env bash
# Start a real one-node SLURM cluster on localhost for the test suite (idempotent).
#
#   tests/support/slurm/start.sh                 # install if missing, configure, start, wait for idle
#   tests/support/slurm/start.sh --install-only  # only install Debian's slurm-wlm and munge
#   eval "$(tests/support/slurm/start.sh)"       # ... and export SLURM_CONF in this shell
#
# Everything lives in a private state directory, ${CEMENTSIM_SLURM_DIR:-/tmp/cementsim-slurm}:
# slurm.conf, cgroup.conf, a private munge key and socket, spool, logs and pid files. The system's
# /etc/slurm and /etc/munge are neither read nor changed. Daemons run as root (munged as the
# packaged `munge` user when it exists). Stop everything with tests/support/slurm/stop.sh.
#
# Only the `export SLURM_CONF=...` line goes to stdout; progress and errors go to stderr.
# Exit codes: 0 running and idle; 2 usage; 3 slurm/munge cannot be installed here (not root, no
# apt-get, apt-get failed); 4 a daemon did not start or the node did not become idle in time.
#
# Environment: CEMENTSIM_SLURM_DIR (state dir), CEMENTSIM_SLURM_CTLD_PORT (6817),
# CEMENTSIM_SLURM_SLURMD_PORT (6818), CEMENTSIM_SLURM_TIMEOUT (seconds to wait for idle, 60).
set -euo pipefail

STATE=${CEMENTSIM_SLURM_DIR:-/tmp/cementsim-slurm}
CTLD_PORT=${CEMENTSIM_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${CEMENTSIM_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${CEMENTSIM_SLURM_TIMEOUT:-60}
CONF="$STATE/slurm.conf"
MUNGE_DIR="$STATE/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
STARTLOG="$STATE/log/start.log" # what the daemons print before they detach
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { echo "cementsim-slurm: $*" >&2; }
die() {
    local code=$1
    shift
    log "ERROR: $*"
    exit "$code"
}

install_only=0
case "${1:-}" in
"") ;;
--install-only) install_only=1 ;;
-h | --help)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*) die 2 "unknown argument '$1' (use --install-only or nothing)" ;;
esac

# ---------------------------------------------------------------------------------------------
# 1. Install Debian's slurm-wlm (slurmctld, slurmd, client tools) and munge when missing.
# ---------------------------------------------------------------------------------------------
have_all() {
    local c
    for c in slurmctld slurmd sinfo squeue sbatch scontrol scancel munged munge mungekey; do
        command -v "$c" >/dev/null 2>&1 || return 1
    done
}

install_packages() {
    [[ $(id -u) -eq 0 ]] || die 3 "slurm-wlm/munge are not installed and this is not root (cannot apt-get)"
    command -v apt-get >/dev/null 2>&1 || die 3 "slurm-wlm/munge are not installed and there is no apt-get"
    local aptlog="${TMPDIR:-/tmp}/cementsim-slurm-apt.$$.log"
    # The packages' maintainer scripts must not start the system-wide daemons (no systemd here,
    # and they would take the ports): deny service starts for the duration of the install.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    log "installing Debian's slurm-wlm and munge (apt-get, 15-30 s) ..."
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                slurm-wlm munge
    } >"$aptlog" 2>&1 || rc=$?
    if ((made_policy)); then rm -f "$policy"; fi
    if ((rc != 0)); then
        tail -n 20 "$aptlog" >&2 || true
        die 3 "apt-get install slurm-wlm munge failed (exit $rc); full log: $aptlog"
    fi
    rm -f "$aptlog"
    have_all || die 3 "slurm-wlm/munge installed but some commands are still missing"
}

have_all || install_packages
if ((install_only)); then
    log "slurm-wlm and munge are installed"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || die 3 "the test cluster's daemons run as root: run start.sh as root"

# ---------------------------------------------------------------------------------------------
# 2. One start at a time (a second concurrent start.sh waits here).
# ---------------------------------------------------------------------------------------------
mkdir -p "$STATE"
chmod 755 "$STATE"
exec 9>"$STATE/.lock" # closed (9>&-) for the daemons, or they would hold the lock
flock -w 120 9 || die 4 "another start.sh/stop.sh holds $STATE/.lock"

# pid_alive PIDFILE NAME: the pid in PIDFILE is a live process called NAME.
pid_alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(<"/proc/$pid/comm") == "$name" ]]
}

show_logs() {
    local f
    for f in "$STARTLOG" "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" "$MUNGE_DIR/munged.log"; do
        if [[ -f $f ]]; then
            echo "----- tail of $f -----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
}

fail_start() {
    log "ERROR: $*"
    show_logs
    log "state directory: $STATE (stop with tests/support/slurm/stop.sh)"
    exit 4
}

# ---------------------------------------------------------------------------------------------
# 3. Configuration (rewritten on every start; the running daemons keep what they read).
# ---------------------------------------------------------------------------------------------
NODE=$(hostname -s)
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # nproc obeys OMP_NUM_THREADS
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# Stay below what slurmd measures, or it drains the node for "Low RealMemory".
REAL_MEM=$((MEM_MB * 95 / 100))
((REAL_MEM >= 1)) || REAL_MEM=1

mkdir -p "$STATE"/{ctld,spool,log,run,jobs}
chmod 755 "$STATE"/{ctld,spool,log,run}
: >"$STARTLOG"
chmod 1777 "$STATE/jobs" # scratch for job output files

conf_tmp="$CONF.tmp.$$"
cat >"$conf_tmp" <<EOF
# Written by tests/support/slurm/start.sh: a one-node cluster on localhost for cementsim's tests.
ClusterName=cementsim
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no systemd: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=120
SlurmdTimeout=300
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv -f "$conf_tmp" "$CONF"
cat >"$STATE/cgroup.conf" <<'EOF'
# Not used (proctrack/linuxproc, task/none); present so that nothing looks for /etc/slurm.
CgroupAutomount=no
EOF
export SLURM_CONF="$CONF"

# port_busy PORT: something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! pid_alive "$STATE/run/slurmctld.pid" slurmctld && port_busy "$CTLD_PORT"; then
    die 4 "port $CTLD_PORT is taken (another slurmctld?): set CEMENTSIM_SLURM_CTLD_PORT"
fi
if ! pid_alive "$STATE/run/slurmd.pid" slurmd && port_busy "$SLURMD_PORT"; then
    die 4 "port $SLURMD_PORT is taken (another slurmd?): set CEMENTSIM_SLURM_SLURMD_PORT"
fi

# ---------------------------------------------------------------------------------------------
# 4. munged with a private key and socket.
# ---------------------------------------------------------------------------------------------
MUNGE_USER=root
if id munge >/dev/null 2>&1; then MUNGE_USER=munge; fi
mkdir -p "$MUNGE_DIR"
chmod 755 "$MUNGE_DIR"
chown "$MUNGE_USER:" "$MUNGE_DIR" 2>/dev/null || chown "$MUNGE_USER" "$MUNGE_DIR"
if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    log "creating a munge key in $MUNGE_DIR"
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
fi
chown "$MUNGE_USER:" "$MUNGE_DIR/munge.key" 2>/dev/null || chown "$MUNGE_USER" "$MUNGE_DIR/munge.key"
chmod 400 "$MUNGE_DIR/munge.key"

if pid_alive "$MUNGE_DIR/munged.pid" munged; then
    log "munged already running (pid $(<"$MUNGE_DIR/munged.pid"))"
else
    rm -f "$MUNGE_DIR/munged.pid" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munge_args=(--key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET"
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log"
        --seed-file="$MUNGE_DIR/munged.seed" --num-threads=2)
    log "starting munged as $MUNGE_USER"
    if [[ $MUNGE_USER == root ]]; then
        munged --force "${munge_args[@]}" </dev/null >>"$STARTLOG" 2>&1 9>&- || fail_start "munged did not start"
    else
        runuser -u munge -- munged "${munge_args[@]}" </dev/null >>"$STARTLOG" 2>&1 9>&- || fail_start "munged did not start"
    fi
fi
for _ in $(seq 50); do
    munge -n --socket="$MUNGE_SOCKET" </dev/null 2>/dev/null |
        unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 && break
    sleep 0.2
done
munge -n --socket="$MUNGE_SOCKET" </dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 ||
    fail_start "munged is not answering on $MUNGE_SOCKET"

# ---------------------------------------------------------------------------------------------
# 5. slurmctld and slurmd (they daemonize and write their pid files).
# ---------------------------------------------------------------------------------------------
if pid_alive "$STATE/run/slurmctld.pid" slurmctld; then
    log "slurmctld already running (pid $(<"$STATE/run/slurmctld.pid"))"
else
    rm -f "$STATE/run/slurmctld.pid"
    log "starting slurmctld"
    # -c: forget jobs and node states of an earlier run of this test cluster.
    slurmctld -c -f "$CONF" </dev/null >>"$STARTLOG" 2>&1 9>&- || fail_start "slurmctld did not start"
fi
for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q 'is UP' || fail_start "slurmctld does not answer 'scontrol ping'"

if pid_alive "$STATE/run/slurmd.pid" slurmd; then
    log "slurmd already running (pid $(<"$STATE/run/slurmd.pid"))"
else
    rm -f "$STATE/run/slurmd.pid"
    log "starting slurmd (node $NODE, $CPUS CPUs, RealMemory=$REAL_MEM MB)"
    slurmd -f "$CONF" -N "$NODE" </dev/null >>"$STARTLOG" 2>&1 9>&- || fail_start "slurmd did not start"
fi

# ---------------------------------------------------------------------------------------------
# 6. Wait until the node is idle (or mixed/allocated: running jobs of an earlier start).
# ---------------------------------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true)
    case "$state" in
    idle | mixed | allocated | completing) break ;;
    drained* | draining* | down*)
        # A leftover state from an earlier run: bring the node back once.
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.5
done
case "$state" in
idle | mixed | allocated | completing) ;;
*)
    scontrol show node "$NODE" >&2 2>/dev/null || true
    fail_start "node $NODE is '${state:-not listed}', not idle, after ${TIMEOUT}s"
    ;;
esac
pid_alive "$STATE/run/slurmctld.pid" slurmctld || fail_start "slurmctld is not running"
pid_alive "$STATE/run/slurmd.pid" slurmd || fail_start "slurmd is not running"

log "node $NODE is $state; slurmctld pid $(<"$STATE/run/slurmctld.pid"), slurmd pid $(<"$STATE/run/slurmd.pid"), munged pid $(<"$MUNGE_DIR/munged.pid")"
echo "export SLURM_CONF=$CONF"
