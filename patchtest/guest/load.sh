# The default load of a patchtest validation (patchtest/guest/
# steps.sh starts one per vCPU): sh load.sh CPU CLASS... loops over the
# exercisers of the classes given, which the host picks from the source
# files of the replaced functions, until it is killed. Each round's count
# goes to /tmp/patchtest-rounds.CPU.
cpu=$1
shift
classes=$*
dir=/tmp/patchtest-load.$cpu
mkdir -p "$dir"

# /proc and /sys/kernel: read what can be read, at most 64 KiB a file.
load_proc() {
	for f in /proc/[a-z]* /proc/self/[a-z]* /proc/sys/kernel/* /proc/sys/vm/* /proc/net/*; do
		case $f in
		/proc/kmsg | /proc/kcore | /proc/kpage* | /proc/sysrq-trigger | /proc/self/mem | /proc/self/pagemap) continue ;;
		esac
		[ -f "$f" ] && [ -r "$f" ] && head -c 65536 "$f" >/dev/null 2>&1
	done
}

# Files on tmpfs: create, write, read, rename, link, stat, truncate, remove.
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
}

# Processes, signals, timers, scheduling.
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
}

# Memory: page cache, anonymous memory through pipes, reclaim.
load_mm() {
	dd if=/dev/zero bs=1M count=8 2>/dev/null | md5sum >/dev/null
	dd if=/dev/urandom of="$dir/mm" bs=1M count=4 2>/dev/null
	cat "$dir/mm" >/dev/null
	rm -f "$dir/mm"
	echo 1 >/proc/sys/vm/drop_caches
	head -c 4096 /proc/meminfo >/dev/null
}

# Loopback networking: TCP through busybox httpd and nc, UDP, ICMP, unix
# datagrams through syslogd.
load_net() {
	ip link set lo up 2>/dev/null
	port=$((8100 + cpu))
	if [ ! -f "$dir/www/index.html" ]; then
		mkdir -p "$dir/www"
		seq 1 2000 >"$dir/www/index.html"
		httpd -f -p "127.0.0.1:$port" -h "$dir/www" &
	fi
	for i in 1 2 3; do
		wget -q -O /dev/null "http://127.0.0.1:$port/index.html"
	done
	echo ping | nc -u -w 1 127.0.0.1 $((9100 + cpu)) 2>/dev/null
	ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1
	cat /proc/net/tcp /proc/net/udp >/dev/null 2>&1
	# Unix datagrams: syslogd (started by the first CPU's loader) reads
	# /dev/log and sleeps in the unix socket receive path between messages.
	if [ "$cpu" = 0 ] && [ ! -S /dev/log ]; then
		syslogd -n -O "$dir/messages" &
	fi
	[ -S /dev/log ] && logger -t patchtest "load round on cpu $cpu"
}

round=0
while :; do
	for class in $classes; do
		"load_$class"
	done
	round=$((round + 1))
	echo $round >"/tmp/patchtest-rounds.$cpu"
done
