# Helpers for guest checks (sourced; POSIX sh as busybox runs it).
S=/sys/kernel/suture
M=/suture/modules

fail() {
	echo "FAIL: $*"
	exit 1
}

# expect ACTUAL EXPECTED WHAT
expect() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
	echo "ok: $3"
}

# load NAME [PARAM=VALUE...]: link and load a module with patchd; a patch
# module an earlier failed check left behind is disabled and removed first.
load() {
	name=$1
	shift
	if loaded "$name"; then
		echo "note: $name left loaded by an earlier check; removing it"
		[ -e "$S/$name/enabled" ] && echo 0 >"$S/$name/enabled"
		rmmod "$name" || fail "cannot remove the stale $name"
	fi
	if [ -f "$M/$name.records.json" ]; then
		set -- --records "$M/$name.records.json" "$@"
	fi
	patchd load-module "$M/$name.ko" "$@" || fail "patchd load-module $name failed"
}

# loaded NAME: is the module in /proc/modules?
loaded() {
	grep -q "^$1 " /proc/modules
}

# set_enabled PATCH 0|1: write the patch's enabled file, retrying a refusal
# (-EBUSY) a few times as patchd does; fails on anything else.
set_enabled() {
	tries=0
	until echo "$2" 2>/dev/null >"$S/$1/enabled"; do
		tries=$((tries + 1))
		[ "$tries" -lt 20 ] || fail "writing $2 to $S/$1/enabled failed $tries times (last_busy: $(cat "$S/$1/last_busy"))"
		usleep 10000
	done
}

# active_count PATCH: how many of its functions redirect now
active_count() {
	awk '$7 == 1 { n++ } END { print n + 0 }' "$S/$1/functions"
}

# path_of PATCH FUNCTION: how calls of FUNCTION are redirected (direct,
# ftrace, or - when not attached): the functions file's ninth column
path_of() {
	awk -v f="$2" '$1 == f { print $9 }' "$S/$1/functions"
}

# unhooked FUNCTION: wait until no ftrace user is attached to FUNCTION (the
# companion unregisters an ftrace_ops left without a patch a moment later)
unhooked() {
	T=/sys/kernel/tracing
	[ -e $T/enabled_functions ] || mount -t tracefs nodev $T || fail "cannot mount tracefs"
	i=0
	while grep -q "^$1 " $T/enabled_functions; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "$1 still hooked: $(grep "^$1 " $T/enabled_functions)"
		usleep 100000
	done
}

# load_kernel_modules: insmod the target's Debian modules the host put in
# /suture/kmods (GuestSpec.kernel_modules), dependencies first.
load_kernel_modules() {
	for ko in /suture/kmods/*.ko; do
		[ -e "$ko" ] || continue
		m=$(basename "$ko" .ko)
		m=${m#[0-9][0-9][0-9][0-9]-}
		grep -q "^$m " /proc/modules || insmod "$ko" || fail "cannot load $ko"
	done
}

# mount_state: patchd's state directory on the ext4 disk of the reboot tests
mount_state() {
	load_kernel_modules
	mkdir -p /var/lib/suture
	mount -t ext4 /dev/vda /var/lib/suture || fail "cannot mount the state disk"
}

# boot_pass: what patchd-boot.service runs at boot; its log in /tmp/boot.log
boot_pass() {
	patchd daemon --once --no-repository --kmod "$M/suture.ko" 2>/tmp/boot.log
	rc=$?
	cat /tmp/boot.log
	expect $rc 0 "the boot pass exits 0"
}
