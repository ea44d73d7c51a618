#!/usr/bin/env bash
# Privilege separation between the worker and its agent. The agent is
# untrusted code: in the images the entrypoint starts as root, drops at once
# to the worker's user (RALPH_WORKER_USER) keeping only CAP_SETUID,
# CAP_SETGID and CAP_KILL (privsep_drop), and the worker runs each agent as
# another user (RALPH_AGENT_USER) with no capability and no new privileges
# (as_agent): the agent can read neither the worker's environment (which
# holds the database password and the git credentials) nor PID 1's, nor the
# worker's files, state directory or git directory, and can't signal or
# trace the worker. CAP_KILL lets the worker stop every process of the
# agent's user after each attempt (privsep_sweep), also what the agent
# detached with setsid. Without that privilege (a plain host, a container
# started as a non-root user) the agent runs as the worker's user, and the
# worker says once that the agent can read its credentials.
# Needs lib/common.sh.

PRIVSEP=0        # 1: agents run as AGENT_UID:AGENT_GID
AGENT_UID=""
AGENT_GID=""
PRIVSEP_WHY=""   # why not, when PRIVSEP=0
AGENT_SETPRIV=() # the command prefix that runs a command as the agent

# The capabilities the worker keeps: switch to the agent's user, and stop
# its processes.
readonly PRIVSEP_CAPS="+setuid,+setgid,+kill"
readonly CAP_KILL=5 CAP_SETGID=6 CAP_SETUID=7

# cap_effective BIT: this shell has capability BIT in its effective set.
cap_effective() {
  local line hex
  [[ -r /proc/self/status ]] || return 1
  while IFS= read -r line; do
    [[ $line == CapEff:* ]] || continue
    hex=${line#CapEff:}
    hex=${hex//[[:space:]]/}
    [[ $hex =~ ^[0-9a-fA-F]{1,16}$ ]] || return 1
    (((16#$hex >> $1) & 1))
    return
  done </proc/self/status
  return 1
}

# user_ids NAME: sets USER_UID, USER_GID and USER_HOME from /etc/passwd
# (NAME, or a numeric uid). Returns 1 when there is no such user. Matched
# field by field, never evaluated.
user_ids() {
  local name uid gid home _pw _gecos _shell
  USER_UID="" USER_GID="" USER_HOME=""
  [[ -r /etc/passwd ]] || return 1
  while IFS=: read -r name _pw uid gid _gecos home _shell; do
    if [[ $name == "$1" || $uid == "$1" ]]; then
      is_uint "$uid" && is_uint "$gid" || return 1
      USER_UID=$uid USER_GID=$gid USER_HOME=$home
      return 0
    fi
  done </etc/passwd
  return 1
}
USER_UID="" USER_GID="" USER_HOME=""

# privsep_init: decides whether agents run as RALPH_AGENT_USER: it must be
# set, name another user than this one (not root), and this shell must be
# able to switch to it and stop its processes (CAP_SETUID, CAP_SETGID,
# CAP_KILL) with setpriv (util-linux). Sets PRIVSEP, AGENT_UID, AGENT_GID,
# and PRIVSEP_WHY when it can't.
privsep_init() {
  PRIVSEP=0 AGENT_UID="" AGENT_GID="" PRIVSEP_WHY="" AGENT_SETPRIV=()
  local user=${RALPH_AGENT_USER:-}
  if [[ -z $user ]]; then
    PRIVSEP_WHY="RALPH_AGENT_USER is not set"
  elif ! user_ids "$user"; then
    PRIVSEP_WHY="RALPH_AGENT_USER=$user is not a user of this system"
  elif ((USER_UID == 0 || USER_UID == EUID)); then
    PRIVSEP_WHY="RALPH_AGENT_USER=$user is root or this worker's own user"
  elif ! command -v setpriv >/dev/null; then
    PRIVSEP_WHY="setpriv (util-linux) is not installed"
  elif ! cap_effective "$CAP_SETUID" || ! cap_effective "$CAP_SETGID" || ! cap_effective "$CAP_KILL"; then
    PRIVSEP_WHY="the worker lacks CAP_SETUID, CAP_SETGID or CAP_KILL (start the container as root with --cap-add SETUID --cap-add SETGID --cap-add KILL)"
  else
    PRIVSEP=1 AGENT_UID=$USER_UID AGENT_GID=$USER_GID
    AGENT_SETPRIV=(setpriv --reuid="$AGENT_UID" --regid="$AGENT_GID" --clear-groups --inh-caps=-all --ambient-caps=-all
      --no-new-privs --)
    privsep_lock_user "$user"
    return 0
  fi
}

# privsep_lock_user NAME: this worker alone runs agents as that user: after
# each attempt every process of it is stopped, so two workers sharing it
# would stop each other's agents. A lock in /tmp (sticky: the agent can't
# remove the worker's file), held until the worker exits and not inherited
# by the agent (WORKSPACE_LOCK_FDS). Exits 2 when another worker holds it.
privsep_lock_user() {
  local fd
  command -v flock >/dev/null || return 0
  exec {fd}>>"/tmp/ralph-agent-user-$AGENT_UID.lock"
  flock -n "$fd" \
    || die "$EXIT_USAGE" "another worker runs its agents as $1: give each worker its own RALPH_AGENT_USER (after each attempt every process of that user is stopped)"
  WORKSPACE_LOCK_FDS+=("$fd")
}

# privsep_warn: the one line a worker without separation starts with.
privsep_warn() {
  ((PRIVSEP)) && return 0
  log "warning: the agent runs as this worker's user (uid $EUID) and can read the worker's credentials (database password, git credentials): $PRIVSEP_WHY; see README.md, Privilege separation"
}

# as_agent CMD…: CMD as the agent's user, its groups cleared, no
# capability, no new privileges (with PRIVSEP=0: CMD as it is).
as_agent() { "${AGENT_SETPRIV[@]}" "$@"; }

# agent_user_pids: the live processes of the agent's user (not zombies:
# dead, only not yet reaped), one pid a line.
agent_user_pids() {
  local proc line state
  for proc in /proc/[0-9]*; do
    line="" state=""
    while IFS= read -r line; do
      case $line in
        State:*) state=$line ;;
        Uid:*) break ;;
      esac
    done 2>/dev/null <"$proc/status" || continue
    [[ $state != *Z* ]] || continue
    # Uid: real effective saved filesystem
    read -r _ line _ <<<"$line"
    [[ $line == "$AGENT_UID" ]] && printf '%s\n' "${proc#/proc/}"
  done
  return 0
}

# privsep_sweep: stops every process of the agent's user (what it left in
# the background, what it detached with setsid): each pass stops all it
# finds first (SIGSTOP: a stopped process can't fork), then kills them,
# until a pass finds none. Returns 1 when some still run after 5 s.
privsep_sweep() {
  ((PRIVSEP)) || return 0
  local pids pid i
  for ((i = 0; i < 50; i++)); do
    pids=$(agent_user_pids)
    [[ -n $pids ]] || return 0
    for pid in $pids; do kill -STOP "$pid" 2>/dev/null || true; done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.1
  done
  log "warning: processes of the agent's user still run after 5 s: $(agent_user_pids | tr '\n' ' ')"
  return 1
}

# privsep_reclaim DIR: what the agent made in DIR (its files, owned by its
# user) opened to the worker's group again (read, write, enter), by the
# agent's user itself, after privsep_sweep: the worker commits it and
# resets the tree for the next task. Symbolic links are not followed.
privsep_reclaim() {
  ((PRIVSEP)) || return 0
  as_agent chmod -R -f u+rwX,g+rwX -- "$1" 2>/dev/null || true
}

# privsep_drop SCRIPT ARGS…: (the entrypoint, as root) exec SCRIPT as
# RALPH_WORKER_USER with its groups, keeping CAP_SETUID, CAP_SETGID and
# CAP_KILL and nothing else; HOME is the worker's. Exits 2 with one line
# when the user or setpriv is missing or the container lacks those
# capabilities.
privsep_drop() {
  local script=$1 user=${RALPH_WORKER_USER:-}
  shift
  command -v setpriv >/dev/null \
    || die "$EXIT_USAGE" "setpriv (util-linux) is not installed: install it, or start the container as the worker's user (--user 1000:1000; the agent can then read the worker's credentials)"
  if ! user_ids "$user" || ((USER_UID == 0)); then
    die "$EXIT_USAGE" "RALPH_WORKER_USER=$user is not a non-root user of this image: set it to the worker's user (ralph)"
  fi
  if ! cap_effective "$CAP_SETUID" || ! cap_effective "$CAP_SETGID" || ! cap_effective "$CAP_KILL"; then
    die "$EXIT_USAGE" "started as root without CAP_SETUID, CAP_SETGID and CAP_KILL: add --cap-add SETUID --cap-add SETGID --cap-add KILL (compose: cap_add), or start as the worker's user (--user 1000:1000; the agent can then read the worker's credentials)"
  fi
  export HOME=$USER_HOME USER=$user LOGNAME=$user
  exec setpriv --reuid="$USER_UID" --regid="$USER_GID" --init-groups \
    --inh-caps="-all,$PRIVSEP_CAPS" --ambient-caps="-all,$PRIVSEP_CAPS" --bounding-set="-all,$PRIVSEP_CAPS" \
    -- "$script" "$@"
}
