# The container of the system tests, for a script that sources it: real
# systemd as PID 1 of private pid, mount, network, uts, ipc and cgroup
# namespaces, whose root is an overlay of the host's / with a tmpfs as its
# writable layer (container-init), so that dpkg, apt and systemctl inside
# change nothing of the host. Besides: check/fail and the helpers the checks
# share. Sourced by tests/system/run and tests/system/run-package.
#
# The sourcing script sets, before sourcing:
#   host_paths       what must not change on the host (checked by
#                    check_poweroff)
#   container_tools  optional: commands it needs besides the container's
#                    own (unshare, nsenter, curl, python3, nginx)
# then calls container_start (or container_setup, its own preparation of
# $work, then container_boot), runs its checks with `check NAME FUNCTION`,
# ends with `check ... check_poweroff` and container_summary.

here=${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}

# Upper bound for the whole run: a hung step must not hang the test suite.
# The trap below still tears everything down.
run_timeout=${SECURELINK_SYSTEM_TIMEOUT:-300}

passed=0
failed=0
work=
cg=
upid=
cpid=
watchdog_pid=
detail=

die() {
	echo "system: $*" >&2
	echo "system: $passed passed, $((failed + 1)) failed"
	exit 1
}

host_snapshot() {
	local p
	for p in "${host_paths[@]}"; do
		stat -c '%n %F %a %U %G %s %Y' "$p" 2>/dev/null || echo "$p absent"
	done
}

# ---- the container ----

# Runs a command inside the container, with a clean environment and a time
# limit, so that no single step can hang the run.
ct() {
	nsenter --target "$cpid" --mount --uts --ipc --net --pid --cgroup --root --wd -- \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb \
		timeout -k 5 "${CT_TIMEOUT:-60}" "$@"
}

container_alive() {
	[ -n "$upid" ] && kill -0 "$upid" 2>/dev/null
}

# Every process the container ever started is in its cgroup subtree.
cgroup_procs() {
	[ -n "$cg" ] && [ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
}

# Powers systemd off; kills the container if that takes too long. Returns 1
# when it had to kill.
stop_container() {
	local deadline killed=0

	if container_alive && [ -n "$cpid" ]; then
		CT_TIMEOUT=10 ct systemctl poweroff >/dev/null 2>&1
		deadline=$((SECONDS + 20))
		while container_alive && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
	fi
	if container_alive; then
		echo "system: systemd did not power off in time; killing the container" >&2
		# PID 1 of a pid namespace takes every process in it along.
		[ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null
		kill -KILL "$upid" 2>/dev/null
		killed=1
	fi
	[ -n "$upid" ] && wait "$upid" 2>/dev/null
	upid=
	return $killed
}

cleanup() {
	local pids

	trap - EXIT INT TERM
	set +e
	[ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
	stop_container
	# Nothing should be left; if something is, it must not outlive us.
	pids=$(cgroup_procs)
	if [ -n "$pids" ]; then
		echo "system: killing leftover processes: $pids" >&2
		# shellcheck disable=SC2086 # one pid per word
		kill -KILL $pids 2>/dev/null
		sleep 0.2
	fi
	if [ -n "$cg" ] && [ -d "$cg" ]; then
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
		[ ! -d "$cg" ] || echo "system: cannot remove the cgroup $cg" >&2
	fi
	[ -n "$work" ] && rm -rf "$work"
}

trap cleanup EXIT
# fd 3 is the real stdout: a signal may arrive while a check's output is
# redirected to its file.
exec 3>&1
trap 'echo "system: interrupted" >&3; echo "system: $passed passed, $((failed + 1)) failed" >&3; exit 130' \
	INT TERM


# container_setup: everything up to the boot: the host's prerequisites, the
# snapshot of host_paths, the scratch directory $work (with $work/mnt), the
# watchdog and the container's cgroup $cg. Between it and container_boot
# the script may prepare $work (tests/system/run installs the build there).
container_setup() {
	local tool

	for tool in unshare nsenter curl python3 ${container_tools[@]+"${container_tools[@]}"} nginx; do
		command -v "$tool" >/dev/null || die "setup: $tool is not installed"
	done
	[ -x /lib/systemd/systemd ] || die "setup: /lib/systemd/systemd is not installed"
	[ "$(id -u)" = 0 ] || die "setup: must run as root (it creates namespaces and mounts)"

	host_before=$(host_snapshot)
	work=$(mktemp -d /tmp/securelink-system.XXXXXX) || die "setup: mktemp failed"
	mkdir "$work/mnt"

	(
		# The sleep is a child of its own: killed with this subshell (by
		# the trap), not left holding the caller's stdout for the rest.
		trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
		sleep "$run_timeout" &
		sleeper=$!
		wait "$sleeper"
		echo "system: the run took longer than ${run_timeout}s; aborting" >&2
		# Killing the container's PID 1 ends whatever step is waiting on
		# it, so the trap runs at once.
		kill -KILL "$(cat "$work/cpid" 2>/dev/null)" 2>/dev/null
		kill -TERM $$
	) &
	watchdog_pid=$!

	# The container's cgroup root: a fresh directory in the host's cgroup2
	# hierarchy (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified
	# on a hybrid one), handed to it through a cgroup namespace. systemd
	# needs a writable cgroup2 of its own.
	cgroot=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
		/proc/self/mountinfo)
	[ -n "$cgroot" ] || die "setup: no cgroup2 hierarchy is mounted on the host"
	cg=$cgroot/securelink-test.$$
	mkdir "$cg" || die "setup: cannot create the cgroup $cg"
}

# container_boot: the container, booted to securelink-test.target; $cpid is
# its PID 1 (systemd), $upid the unshare on the host that holds it.
container_boot() {
	(
		echo $BASHPID >"$cg/cgroup.procs" || exit 1
		exec unshare --cgroup --pid --fork --kill-child --mount --mount-proc --net --uts --ipc -- \
			"$here/container-init" "$work/mnt" "$here/units"
	) >"$work/console.log" 2>&1 &
	upid=$!

	# PID 1 of the container is unshare's child; it is ready for nsenter
	# once it has become systemd (container-init pivots into the overlay
	# before that).
	local deadline=$((SECONDS + 15)) state
	while :; do
		cpid=$(awk '{ print $1 }' "/proc/$upid/task/$upid/children" 2>/dev/null)
		if [ -n "$cpid" ] && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = systemd ] &&
			[ -S "/proc/$cpid/root/run/systemd/private" ]; then
			echo "$cpid" >"$work/cpid"
			break
		fi
		if ! container_alive || [ $SECONDS -ge $deadline ]; then
			cat "$work/console.log" >&2
			die "setup: systemd did not start in the container"
		fi
		sleep 0.05
	done

	state=$(CT_TIMEOUT=60 ct systemctl is-system-running --wait 2>&1)
	if [ "$state" != running ]; then
		ct systemctl --failed --no-pager >&2
		ct journalctl -b --no-pager -p warning >&2
		die "setup: the container's boot ended '$state', not 'running'"
	fi
}

container_start() {
	container_setup
	container_boot
}

container_summary() {
	echo "system: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# ---- checks ----


# check NAME FUNCTION: runs FUNCTION, prints PASS/FAIL. On failure, what the
# function printed and the journal of both services during the check follow.
check() {
	local name=$1 cursor start took
	shift

	detail=
	start=${EPOCHREALTIME/[.,]/}
	cursor=$(ct journalctl -n 0 --show-cursor -q 2>/dev/null | sed -n 's/^-- cursor: //p')
	if "$@" >"$work/check.out" 2>&1; then
		took=$(((${EPOCHREALTIME/[.,]/} - start) / 100000))
		echo "PASS $name${detail:+ ($detail)} [$((took / 10)).$((took % 10))s]"
		passed=$((passed + 1))
	else
		took=$(((${EPOCHREALTIME/[.,]/} - start) / 100000))
		echo "FAIL $name [$((took / 10)).$((took % 10))s]"
		failed=$((failed + 1))
		sed 's/^/    | /' "$work/check.out"
		if [ -n "$cursor" ] && container_alive; then
			echo "    journal (securelinkd, nginx) during the check:"
			ct journalctl --no-pager -o short-monotonic --after-cursor="$cursor" \
				-u securelinkd.service -u securelinkd.socket -u nginx.service 2>&1 |
				tail -n 40 | sed 's/^/    | /'
		fi
	fi
}

fail() {
	echo "$*"
	return 1
}

prop() { # prop UNIT PROPERTY
	ct systemctl show -P "$2" "$1"
}

# Waits up to $1 seconds for a command to succeed. Used only where nothing
# signals the change.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

http_status() {
	ct curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1$1"
}

# The link with its token changed (first character flipped).
tamper() {
	python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); q = u.parse_qs(p.query)
t = q["token"][0]; q["token"] = [("B" if t[0] != "B" else "C") + t[1:]]
print(u.urlunsplit(p._replace(query=u.urlencode(q, doseq=True))))' "$1"
}

query_param() { # query_param URL NAME
	python3 -c '
import sys, urllib.parse as u
print(u.parse_qs(u.urlsplit(sys.argv[1]).query)[sys.argv[2]][0])' "$1" "$2"
}

sign() {
	ct securelinkctl sign "$@"
}

expect_status() { # expect_status CODE URL WHAT
	local got
	got=$(http_status "$2")
	[ "$got" = "$1" ] || fail "$3: GET $2 answered $got, expected $1"
}

media_file=/media/hello.txt
media_body="securelink system test $$"

nginx_workers() { # children of nginx's master, sorted
	ct cat "/proc/$1/task/$1/children" | tr ' ' '\n' | sed '/^$/d' | sort -n
}

status_json() {
	ct securelinkctl --json status
}

# The persistent part of STATUS: the schedule and the key ring.
status_keys() {
	python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print(json.dumps({"active_kid": s["active_kid"], "next_rotation": s["next_rotation"],
                  "keys": s["keys"]}, sort_keys=True))'
}

check_poweroff() {
	local pids leftover now

	stop_container || fail "systemctl poweroff did not end the container; it was killed" || return 1
	! container_alive || fail "the container is still running" || return 1
	pids=$(cgroup_procs)
	[ -z "$pids" ] || fail "processes left in the container's cgroup: $pids" || return 1
	leftover=$(grep -e "$work" -e securelink-test /proc/self/mountinfo)
	[ -z "$leftover" ] || fail "mounts left on the host: $leftover" || return 1
	now=$(host_snapshot)
	[ "$now" = "$host_before" ] ||
		fail "the host changed: $(diff <(echo "$host_before") <(echo "$now"))"
}

