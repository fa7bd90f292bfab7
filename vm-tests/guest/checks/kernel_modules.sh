# The target's own Debian modules that the host put in /suture/kmods
# (GuestSpec.kernel_modules with their dependencies, found whatever their
# compression and decompressed by the rig) load: Debian signed them, so
# they taint nothing.
load_kernel_modules
n=0
for ko in /suture/kmods/*.ko; do
	[ -e "$ko" ] || fail "no kernel module in /suture/kmods"
	m=$(basename "$ko" .ko)
	m=${m#[0-9][0-9][0-9][0-9]-}
	loaded "$m" || fail "$m is not loaded"
	n=$((n + 1))
done
echo "ok: $n Debian modules loaded: $(cd /suture/kmods && echo *.ko)"
