# patchd and a busy function: a kernel thread sleeps inside a function the
# bundle replaces, so the companion module refuses every switch with EBUSY.
# patchd retries a bounded number of times, then fails with exit 3 naming
# the function and the thread, and leaves nothing changed: no module
# loaded, nothing recorded. Once the thread leaves, the same apply works.
P=test_patch_busy
B=/suture/bundles/$P.bundle
STATE=/var/lib/suture-busy
loaded suture_target || load suture_target
loaded $P && fail "$P is loaded already"
echo hold >/proc/suture_target_busy
i=0
until [ "$(cat /proc/suture_target_busy)" = sleeping ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never slept"; usleep 10000
done
expect "$(cat /proc/suture_target)" "value 1" "value before"
start=$(cut -d' ' -f1 /proc/uptime)
out=$(patchd apply --kmod "$M/suture.ko" --state-dir $STATE --switch-attempts 4 --switch-backoff-ms 50 "$B" 2>&1)
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
echo "$out" | tail -n 3
echo "gave up after $(awk "BEGIN { printf \"%.2f\", $end - $start }") s"
expect $rc 3 "patchd apply on a busy function: exit 3 (busy)"
case "$out" in *"4 attempts"* | *"4 times"*) ;; *) fail "the error does not say how often it tried" ;; esac
case "$out" in *suture_target_sleep*) ;; *) fail "the error does not name the busy function" ;; esac
case "$out" in *suture_busy*) ;; *) fail "the error does not name the thread" ;; esac
loaded $P && fail "$P is still loaded after the refusal"
expect "$(cat /proc/suture_target)" "value 1" "value unchanged"
out=$(patchd status --state-dir $STATE) || fail "status failed"
case "$out" in *"applied bundles: none"*) ;; *) fail "status is not empty: $out" ;; esac
echo release >/proc/suture_target_busy
i=0
until [ "$(cat /proc/suture_target_busy)" = idle ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the kthread never woke"; usleep 10000
done
usleep 100000
patchd apply --kmod "$M/suture.ko" --state-dir $STATE "$B" || fail "apply failed after the thread left"
expect "$(cat /proc/suture_target)" "value 2" "value with the patch applied"
patchd revert --state-dir $STATE --all || fail "revert failed"
expect "$(cat /proc/suture_target)" "value 1" "value after revert"
patchd audit verify --state-dir $STATE || fail "the audit log does not verify"
