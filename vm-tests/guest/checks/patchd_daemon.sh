# patchd's daemon on the real kernel: a bundle dropped into the watched
# directory is applied (the time it took is printed as a figure, not
# asserted: the deadline is 20 s); a bundle that fails is reported once and
# not retried; a bundle published to a repository served on loopback
# (busybox httpd: index.json plus the bundle) is fetched and applied; the
# metrics file and `patchd report` show them. Also refused with nothing
# loaded: a bundle signed by an unknown key and a truncated bundle.
P=cmdline_demo
Q=workqueue_flush_dependency
B=/suture/bundles
STATE=/var/lib/suture-daemon
W=$STATE/bundles
cmdline=$(cat /proc/cmdline)
mkdir -p $W /tmp/metrics /tmp/repo
for p in $P $Q; do
	if loaded $p; then
		[ -e "$S/$p/enabled" ] && echo 0 >"$S/$p/enabled"
		rmmod $p || fail "cannot remove the stale $p"
	fi
done

modules_before=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')
out=$(patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$B/$P.otherkey.bundle" 2>&1)
rc=$?
echo "unknown key (exit $rc): $(echo "$out" | tail -n 1)"
expect $rc 5 "a bundle signed by an unknown key: exit 5 (rejected)"
case "$out" in *"not in the trust store"* | *"untrusted"* | *"not trusted"* | *"unknown"*) ;; *) fail "the error does not say the key is unknown: $out" ;; esac
out=$(patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$B/$P.truncated.bundle" 2>&1)
rc=$?
echo "truncated (exit $rc): $(echo "$out" | tail -n 1)"
expect $rc 5 "a truncated bundle: exit 5 (rejected)"
case "$out" in *"truncated"* | *"ends"* | *"short"*) ;; *) fail "the error does not say the bundle is truncated: $out" ;; esac
expect "$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')" "$modules_before" "nothing loaded by the refused bundles"

# The watched directory.
patchd daemon --kmod "$M/suture.ko" --state-dir $STATE --watch-dir $W --no-repository 2>/tmp/daemon.log &
daemon=$!
i=0
until grep -q "ready: watching" /tmp/daemon.log; do
	i=$((i + 1))
	[ $i -lt 300 ] || { cat /tmp/daemon.log; fail "the daemon did not get ready in 30 s"; }
	usleep 100000
done
cp "$B/$P.bundle" "$W/.$P.bundle.part"
start=$(cut -d' ' -f1 /proc/uptime)
mv "$W/.$P.bundle.part" "$W/$P.bundle"
i=0
until [ "$(cat $S/$P/enabled 2>/dev/null)" = 1 ]; do
	i=$((i + 1))
	[ $i -lt 1000 ] || { cat /tmp/daemon.log; fail "the dropped bundle was not applied within 20 s"; }
	usleep 20000
done
end=$(cut -d' ' -f1 /proc/uptime)
took=$(awk "BEGIN { printf \"%.2f\", $end - $start }")
echo "dropped bundle applied after $took s"
echo "@@SUTURE-FIGURE watch_apply_seconds $took"
expect "$(cat /proc/cmdline)" "$cmdline suture-fixed" "/proc/cmdline with the dropped bundle applied"
cp "$B/$P.flipped.bundle" "$W/flipped.bundle"
i=0
until grep -q "watch: cannot apply" /tmp/daemon.log; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat /tmp/daemon.log; fail "the damaged bundle was not reported"; }
	usleep 50000
done
touch "$W/flipped.bundle"
sleep 1
expect "$(grep -c "watch: cannot apply" /tmp/daemon.log)" 1 "a failed bundle is reported once, not retried"
kill -TERM $daemon
wait $daemon
rc=$?
expect $rc 0 "the daemon stops on SIGTERM with exit 0"
grep -q "stopping on SIGTERM" /tmp/daemon.log || fail "no 'stopping on SIGTERM' in the log"
sed 's/^/  daemon: /' /tmp/daemon.log | cut -c1-220

# The repository on loopback.
rm "$W/flipped.bundle"
ip link set lo up
cp "$B/$Q.bundle" /tmp/repo/
release=$(uname -r)
build_id=$(patchd status --state-dir $STATE --json | sed -n 's/.*"build_id": "\([0-9a-f]*\)".*/\1/p' | head -n 1)
sha=$(sha256sum /tmp/repo/$Q.bundle | cut -d' ' -f1)
size=$(stat -c %s /tmp/repo/$Q.bundle)
cat >/tmp/repo/index.json <<JSON
{"version":1,"bundles":[{"name":"$Q.bundle","sha256":"$sha","size":$size,"target":{"kernel_release":"$release","build_id":"$build_id"}}]}
JSON
httpd -f -p 127.0.0.1:8088 -h /tmp/repo &
httpd=$!
umask 022
cat >/tmp/patchd.toml <<TOML
state_dir = "$STATE"
watch_dir = "$W"
kmod = "$M/suture.ko"
[repository]
url = "http://127.0.0.1:8088/"
allow_insecure_http = true
[metrics]
textfile_dir = "/tmp/metrics"
TOML
patchd --config /tmp/patchd.toml daemon --once 2>/tmp/daemon-repo.log
rc=$?
kill $httpd
sed 's/^/  daemon: /' /tmp/daemon-repo.log | cut -c1-220
expect $rc 0 "daemon --once with the repository"
grep -q "repository: downloaded $Q.bundle" /tmp/daemon-repo.log || fail "the repository's bundle was not downloaded"
expect "$(cat $S/$Q/enabled 2>/dev/null)" 1 "the repository's bundle is applied"
grep -q '^suture_patches_applied 2' /tmp/metrics/suture.prom || { cat /tmp/metrics/suture.prom; fail "the metrics do not show 2 patches applied"; }
grep '^suture_' /tmp/metrics/suture.prom | head -n 12
patchd report --state-dir $STATE || fail "patchd report failed"
patchd revert --state-dir $STATE --all || fail "revert failed"
loaded $P && fail "$P still loaded"
loaded $Q && fail "$Q still loaded"
echo "ok: watched directory, repository, metrics, report"
