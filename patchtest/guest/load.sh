# The default load of a patchtest validation (patchtest/guest/
# steps.sh starts one per vCPU): sh load.sh CPU CLASS... loops over the
# exercisers of the classes given, which the host picks from the source
# files of the replaced functions, until it is killed. Each round's count
# goes to /tmp/patchtest-rounds.CPU. sh load.sh CPU --stop undoes what a
# killed loader left behind (mounts, loop devices, an offline CPU).
#
# Exercisers that change state the whole guest shares (CPU hotplug, audit,
# cgroup hierarchies, I/O schedulers, driver modules) run on the loader of
# CPU 0 only. Every exerciser bounds its own time; the programs of
# $BIN (patchtest/guest/programs/, compiled by the host) run each of theirs
# under an alarm.
cpu=$1
shift
classes=$*
dir=/tmp/patchtest-load.$cpu
BIN=/suture/validate/bin

# Unmounts what this loader mounted, detaches its loop devices, brings back
# a CPU left offline (CPU 0's loader) and removes its directory.
load_cleanup() {
	awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do
			fsfreeze --unfreeze "$m" 2>/dev/null
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		done
	for f in /sys/block/loop*/loop/backing_file; do
		[ -r "$f" ] || continue
		case $(cat "$f") in
		"$dir"/*)
			l=${f%/loop/backing_file}
			losetup -d "/dev/${l##*/}" 2>/dev/null
			;;
		esac
	done
	if [ "$cpu" = 0 ]; then
		for f in /sys/devices/system/cpu/cpu*/online; do
			[ "$(cat "$f")" = 1 ] || echo 1 >"$f"
		done
	fi
	rm -rf "$dir"
}

# Whether this is CPU 0's loader, which alone runs the exercisers of state
# the whole guest shares; the others count the classes they skip.
only_cpu0() {
	[ "$cpu" = 0 ] && return 0
	skipped=$((skipped + 1))
	return 1
}

if [ "$classes" = --stop ]; then
	load_cleanup
	exit 0
fi

# /proc and /sys/kernel: read what can be read, at most 64 KiB a file.
load_proc() {
	for f in /proc/[a-z]* /proc/self/[a-z]* /proc/sys/kernel/* /proc/sys/vm/* /proc/net/*; do
		case $f in
		/proc/kmsg | /proc/kcore | /proc/kpage* | /proc/sysrq-trigger | /proc/self/mem | /proc/self/pagemap) continue ;;
		esac
		[ -f "$f" ] && [ -r "$f" ] && head -c 65536 "$f" >/dev/null 2>&1
	done
}

# /sys: the readable attributes of the CPUs (the hotplug state table) and
# block devices, then of every device of every bus (ACPI devices evaluate
# their _STA for status) and class (at most 2000), the kernel and modules
# (at most 1000); an md array (md_mod) adds attributes of sysfs's
# pre-allocated kind. Left out: files that wait for events
# (/sys/power/wakeup_count) and the per-cache slab statistics (thousands).
load_sysfs() {
	# A named array ("md_NAME") stays until it is stopped.
	if [ "$cpu" = 0 ] && [ -w /sys/module/md_mod/parameters/new_array ] && [ ! -e /sys/block/md_patchtest ]; then
		echo md_patchtest >/sys/module/md_mod/parameters/new_array 2>/dev/null
	fi
	{
		find /sys/devices/system /sys/block/*/ -maxdepth 3 -type f
		find /sys/bus/*/devices/*/ /sys/class/*/*/ -maxdepth 2 -type f | head -n 2000
		find /sys/kernel /sys/module -maxdepth 3 -type f |
			grep -v -e '^/sys/kernel/slab/' -e '^/sys/kernel/security/' | head -n 1000
	} 2>/dev/null | grep -v '/wakeup_count$' | xargs cat >/dev/null 2>&1
}

# Files on tmpfs: create, write, read, rename, link, stat, truncate, remove;
# inotify watches, record locks and leases, splice and sendfile; a hugetlbfs
# mounted and unmounted; and (CPU 0) the emergency thaw of every file
# system (sysrq j; nothing is frozen, so it thaws nothing).
load_fs() {
	mkdir -p "$dir/d"
	for i in 1 2 3 4; do
		echo "round $i" >"$dir/d/f$i"
		dd if=/dev/zero of="$dir/d/g$i" bs=4k count=16 2>/dev/null
		cat "$dir/d/f$i" "$dir/d/g$i" >/dev/null
		mv "$dir/d/f$i" "$dir/d/h$i"
		ln "$dir/d/h$i" "$dir/d/l$i"
		ln -s "$dir/d/h$i" "$dir/d/s$i"
		stat "$dir/d/s$i" >/dev/null
		truncate -s 1000 "$dir/d/g$i"
	done
	ls -lR "$dir" >/dev/null
	find "$dir" -type f | xargs md5sum >/dev/null
	rm -rf "$dir/d"
	sync
	"$BIN/load-fs" inotify locks splice >/dev/null 2>&1
	mkdir -p "$dir/huge"
	if mount -t hugetlbfs none "$dir/huge" 2>/dev/null; then
		touch "$dir/huge/f"
		stat -f "$dir/huge" >/dev/null
		rm -f "$dir/huge/f"
		umount "$dir/huge"
	fi
	[ "$cpu" = 0 ] && echo j >/proc/sysrq-trigger
}

# Disk file systems on a loop device: for each of ext4 (busybox makes ext2,
# mounted by the ext4 driver with encryption enabled: the encrypt feature
# is bit 0 of byte 1122, in s_feature_incompat), vfat, exfat (made by
# load-fs) and hfsplus (a bare volume header by load-fs: the mount is
# refused after reading it) whose driver is loaded, an image on tmpfs
# made, mounted, filled, searched, given encryption policies, frozen and
# thawed, unmounted.
load_disk() {
	[ -e /dev/loop-control ] || return 0
	img=$dir/disk.img
	mkdir -p "$dir/disk"
	for fs in ext4 vfat exfat hfsplus; do
		grep -qw "$fs" /proc/filesystems || continue
		dd if=/dev/zero of="$img" bs=1M count=8 2>/dev/null
		case $fs in
		ext4)
			mke2fs -F "$img" >/dev/null 2>&1
			b=$(dd if="$img" bs=1 skip=1122 count=1 2>/dev/null | od -An -tu1)
			printf "$(printf '\\%03o' $((b | 1)))" | dd of="$img" bs=1 seek=1122 conv=notrunc 2>/dev/null
			;;
		vfat) mkdosfs "$img" >/dev/null 2>&1 ;;
		exfat) "$BIN/load-fs" "mkexfat=$img" >/dev/null 2>&1 ;;
		hfsplus) "$BIN/load-fs" "mkhfsplus=$img" >/dev/null 2>&1 ;;
		esac
		if mount -t "$fs" -o loop "$img" "$dir/disk" 2>/dev/null; then
			[ "$fs" = ext4 ] && "$BIN/load-fs" "fscrypt=$dir/disk" >/dev/null 2>&1
			mkdir -p "$dir/disk/a/b"
			for i in 1 2 3 4 5 6 7 8; do
				echo "file $i" >"$dir/disk/a/f$i"
			done
			ls -l "$dir/disk/a" >/dev/null
			cat "$dir/disk/a/f3" "$dir/disk/a/nonexistent" >/dev/null 2>&1
			mv "$dir/disk/a/f1" "$dir/disk/a/b/g1"
			rm -rf "$dir/disk/a"
			sync
			fsfreeze --freeze "$dir/disk" 2>/dev/null && fsfreeze --unfreeze "$dir/disk"
			umount -d "$dir/disk" 2>/dev/null || umount "$dir/disk"
		fi
		rm -f "$img"
	done
}

# Processes, signals, timers, scheduling; work queues flushed on every CPU
# (vm.stat_refresh); CPU-time clocks and timers, a robust futex left held
# by a dying thread, a child traced syscall by syscall.
load_kernel() {
	for i in 1 2 3 4; do
		sh -c 'exit 0'
		sleep 0.01 &
		kill -USR1 $! 2>/dev/null
		wait 2>/dev/null
		taskset -p $$ >/dev/null
	done
	ps >/dev/null
	uname -a >/dev/null
	echo 1 >/proc/sys/vm/stat_refresh 2>/dev/null
	"$BIN/load-kernel" cputimers futex ptrace >/dev/null 2>&1
}

# CPU hotplug (CPU 0's loader): the last CPU offline and online again, the
# hotplug state table read. The other loaders pin themselves to their CPU
# again at each round, as taking a CPU offline unpins its tasks.
load_hotplug() {
	only_cpu0 && "$BIN/load-kernel" hotplug >/dev/null 2>&1
}

# cgroups (CPU 0): a cgroup v1 cpuset child given the CPUs and memory nodes
# and a task, and a cgroup v2 child with the pids and memory controllers,
# a task moved in, limits set and statistics read; all removed again.
load_cgroup() {
	only_cpu0 || return 0
	mkdir -p "$dir/cpuset" "$dir/cg2"
	if mount -t cgroup -o cpuset none "$dir/cpuset" 2>/dev/null; then
		c=$dir/cpuset/patchtest
		mkdir -p "$c"
		cat "$dir/cpuset/cpuset.cpus" >"$c/cpuset.cpus" 2>/dev/null
		cat "$dir/cpuset/cpuset.mems" >"$c/cpuset.mems" 2>/dev/null
		sh -c "echo \$\$ >$c/tasks; exec sleep 0.05" 2>/dev/null
		cat "$c"/cpuset.* >/dev/null 2>&1
		rmdir "$c"
		umount "$dir/cpuset"
	fi
	if mount -t cgroup2 none "$dir/cg2" 2>/dev/null; then
		c=$dir/cg2/patchtest
		echo "+pids +memory" >"$dir/cg2/cgroup.subtree_control" 2>/dev/null
		mkdir -p "$c"
		echo 64 >"$c/pids.max" 2>/dev/null
		echo 256M >"$c/memory.max" 2>/dev/null
		sh -c "echo \$\$ >$c/cgroup.procs; exec dd if=/dev/zero bs=64k count=16 of=/dev/null" 2>/dev/null
		cat "$c"/* >/dev/null 2>&1
		rmdir "$c"
		umount "$dir/cg2"
	fi
}

# Memory: page cache, anonymous memory through pipes, reclaim; userfaultfd,
# process_vm_readv/writev, anonymous mappings changed every way, swapon of
# a missing file; the BIOS area read through /dev/mem (each page mapped by
# ioremap into the vmalloc area, and unmapped).
load_mm() {
	dd if=/dev/mem of=/dev/null bs=4096 skip=240 count=16 2>/dev/null
	dd if=/dev/zero bs=1M count=8 2>/dev/null | md5sum >/dev/null
	dd if=/dev/urandom of="$dir/mm" bs=1M count=4 2>/dev/null
	cat "$dir/mm" >/dev/null
	rm -f "$dir/mm"
	echo 1 >/proc/sys/vm/drop_caches
	head -c 4096 /proc/meminfo >/dev/null
	"$BIN/load-mm" userfault process-vm mmap swapon >/dev/null 2>&1
}

# Block I/O on a null_blk device (the null_blk module): direct and buffered
# reads and writes, writeback throttling on; on CPU 0, I/O under every I/O
# scheduler the kernel has and from a child cgroup under the iocost
# controller.
load_block() {
	b=nullb0
	[ -b /dev/$b ] || return 0
	q=/sys/block/$b/queue
	off=$((cpu * 4096))
	dd if=/dev/$b of=/dev/null bs=64k count=32 skip="$off" iflag=direct 2>/dev/null
	dd if=/dev/zero of=/dev/$b bs=64k count=32 seek="$off" oflag=direct 2>/dev/null
	dd if=/dev/zero of=/dev/$b bs=4k count=128 seek="$off" conv=fsync 2>/dev/null
	dd if=/dev/$b of=/dev/null bs=4k count=128 skip="$off" 2>/dev/null
	[ "$cpu" = 0 ] || return 0
	[ "$(cat $q/wbt_lat_usec 2>/dev/null)" = 0 ] && echo 2000 >$q/wbt_lat_usec 2>/dev/null
	for s in $(tr -d '[]' <$q/scheduler); do
		echo "$s" >$q/scheduler 2>/dev/null || continue
		dd if=/dev/$b of=/dev/null bs=4k count=256 iflag=direct 2>/dev/null
		dd if=/dev/zero of=/dev/$b bs=4k count=64 conv=fsync 2>/dev/null
	done
	mkdir -p "$dir/io"
	if mount -t cgroup2 none "$dir/io" 2>/dev/null; then
		c=$dir/io/patchtest-io
		dev=$(cat /sys/block/$b/dev)
		echo +io >"$dir/io/cgroup.subtree_control" 2>/dev/null
		mkdir -p "$c"
		echo "$dev enable=1" >"$dir/io/io.cost.qos" 2>/dev/null
		sh -c "echo \$\$ >$c/cgroup.procs; exec timeout 5 dd if=/dev/$b of=/dev/null bs=64k count=64 iflag=direct" 2>/dev/null
		echo "$dev enable=0" >"$dir/io/io.cost.qos" 2>/dev/null
		cat "$c"/io.* >/dev/null 2>&1
		rmdir "$c"
		umount "$dir/io"
	fi
}

# Loopback networking: TCP through busybox httpd and nc, UDP, ICMP and
# ICMPv6, unix datagrams through syslogd; TCP, unix socket pairs with
# descriptors in flight, SCTP and LLC where their modules are loaded,
# packet sockets and the ARP ioctls; IPv4 and IPv6 policy routing rules
# added and removed.
httpd_pid=
syslogd_pid=
load_net() {
	ip link set lo up 2>/dev/null
	port=$((8100 + cpu))
	# This loader's servers: a killed loader's are gone with it.
	if [ -z "$httpd_pid" ]; then
		mkdir -p "$dir/www"
		seq 1 2000 >"$dir/www/index.html"
		httpd -f -p "127.0.0.1:$port" -h "$dir/www" &
		httpd_pid=$!
	fi
	for i in 1 2 3; do
		wget -q -O /dev/null "http://127.0.0.1:$port/index.html"
	done
	echo ping | nc -u -w 1 127.0.0.1 $((9100 + cpu)) 2>/dev/null
	ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1
	cat /proc/net/tcp /proc/net/udp >/dev/null 2>&1
	# Unix datagrams: syslogd (started by the first CPU's loader) reads
	# /dev/log and sleeps in the unix socket receive path between messages.
	if [ "$cpu" = 0 ] && [ -z "$syslogd_pid" ]; then
		rm -f /dev/log
		syslogd -n -O "$dir/messages" &
		syslogd_pid=$!
	fi
	[ -S /dev/log ] && logger -t patchtest "load round on cpu $cpu"
	"$BIN/load-net" tcp unix packet arp sctp llc >/dev/null 2>&1
	rule="pref $((31000 + cpu)) table $((100 + cpu))"
	ip rule add from "198.51.100.$((cpu + 1))" $rule 2>/dev/null
	ip -6 rule add from "2001:db8::$((cpu + 1))" $rule 2>/dev/null
	ping6 -c 1 -W 1 ::1 >/dev/null 2>&1
	ip -6 rule del from "2001:db8::$((cpu + 1))" $rule 2>/dev/null
	ip rule del from "198.51.100.$((cpu + 1))" $rule 2>/dev/null
}

# TIPC (CPU 0): a bearer enabled and disabled on a dummy Ethernet device
# (the dummy module), where the tipc module is loaded.
load_tipc() {
	only_cpu0 && "$BIN/load-net" tipc >/dev/null 2>&1
}

# Wireless (CPU 0): mac80211_hwsim's simulated radios registered and
# unregistered (module loaded and removed).
load_wireless() {
	only_cpu0 || return 0
	for ko in /suture/kmods/*-mac80211_hwsim.ko; do
		[ -f "$ko" ] || return 0
		grep -q "^mac80211_hwsim " /proc/modules || insmod "$ko" radios=2 2>/dev/null
		for d in /sys/class/net/wlan*; do
			[ -e "$d" ] && ip link set "${d##*/}" up 2>/dev/null
		done
		cat /sys/class/ieee80211/*/* >/dev/null 2>&1
		rmmod mac80211_hwsim 2>/dev/null
	done
}

# Terminals: the virtual console's ioctls and screen memory, a pty pair.
load_tty() {
	"$BIN/load-tty" vt pty >/dev/null 2>&1
	stty -a </dev/console >/dev/null 2>&1
}

# Keys (CPU 0): user keys through their life to the garbage collector, an
# asymmetric key verifying a signature, the PE signature check of an
# unsigned kexec image (refused); then a second's pause, as the
# collector's worker sleeps in it (synchronize_rcu) after each round: kept
# busy, it would hold off every switch of its code.
load_keys() {
	only_cpu0 || return 0
	"$BIN/load-crypto" keys pkey pe-sig >/dev/null 2>&1
	sleep 1
}

# The kernel crypto API from user space (AF_ALG, the algif_skcipher and
# algif_hash modules).
load_crypto() {
	"$BIN/load-crypto" af-alg >/dev/null 2>&1
}

# BPF: a program reserving ring buffer records, run by BPF_PROG_TEST_RUN.
load_bpf() {
	"$BIN/load-kernel" bpf >/dev/null 2>&1
}

# Audit (CPU 0): enabled with a syscall rule for a child, then disabled.
load_audit() {
	only_cpu0 && "$BIN/load-kernel" audit >/dev/null 2>&1
}

load_cleanup
mkdir -p "$dir"
round=0
set -- $classes
while :; do
	taskset -pc "$cpu" $$ >/dev/null 2>&1
	skipped=0
	for class in $classes; do
		"load_$class"
	done
	# A loader whose every class is CPU 0's waits instead of spinning.
	[ "$skipped" -lt $# ] || sleep 1
	round=$((round + 1))
	echo $round >"/tmp/patchtest-rounds.$cpu"
done
