//! The default load's exercisers (patchtest/guest/load.sh), chosen per
//! bundle from the source files of the replaced functions, and the kernel
//! modules they need.

/// Exercisers of the default load, in patchtest/guest/load.sh's order:
/// cheap ones first, those that change state the whole guest shares (run
/// by CPU 0's loader only) last.
pub const ALL_CLASSES: &[&str] = &[
    "proc", "sysfs", "fs", "kernel", "mm", "net", "tty", "keys", "crypto", "bpf", "disk", "block",
    "cgroup", "audit", "hotplug", "tipc", "wireless",
];

/// The exercisers of code whose directory says nothing more specific
/// (drivers, lib, arch, ...): every one that changes no state the whole
/// guest shares.
pub(crate) const BROAD_CLASSES: &[&str] = &["proc", "sysfs", "fs", "kernel", "mm", "net", "tty"];

/// The exercisers likely to reach code in `object_file` (a path in the
/// kernel tree such as `fs/proc/cmdline.o`), by subsystem directory, the
/// most specific first; [`BROAD_CLASSES`] where the directory says nothing.
pub fn load_classes(object_file: &str) -> &'static [&'static str] {
    let table: &[(&str, &[&str])] = &[
        ("fs/proc/", &["proc"]),
        ("fs/sysfs/", &["sysfs"]),
        ("fs/kernfs/", &["sysfs", "cgroup"]),
        ("fs/userfaultfd", &["mm"]),
        ("fs/hugetlbfs/", &["fs", "mm"]),
        ("fs/ext4/", &["disk", "fs"]),
        ("fs/jbd2/", &["disk", "fs"]),
        ("fs/fat/", &["disk", "fs"]),
        ("fs/exfat/", &["disk", "fs"]),
        ("fs/hfsplus/", &["disk", "fs"]),
        ("fs/iomap/", &["disk", "fs"]),
        ("fs/crypto/", &["disk", "fs"]),
        ("fs/buffer", &["disk", "block", "fs"]),
        ("fs/mpage", &["disk", "block", "fs"]),
        ("fs/", &["fs", "proc"]),
        ("mm/", &["mm", "fs"]),
        ("block/", &["block", "disk"]),
        ("kernel/cgroup/", &["cgroup", "kernel"]),
        ("kernel/bpf/", &["bpf", "kernel"]),
        ("kernel/audit", &["audit", "kernel"]),
        ("kernel/cpu.", &["sysfs", "kernel", "hotplug"]),
        ("kernel/smpboot", &["kernel", "hotplug"]),
        ("kernel/stop_machine", &["kernel", "hotplug"]),
        ("kernel/irq/", &["kernel", "hotplug"]),
        ("kernel/time/", &["kernel", "hotplug"]),
        ("kernel/", &["kernel", "proc", "fs"]),
        ("ipc/", &["kernel"]),
        ("security/keys/", &["keys"]),
        ("crypto/asymmetric_keys/", &["keys"]),
        ("crypto/", &["crypto", "keys"]),
        ("security/", &["fs", "kernel", "keys"]),
        ("net/tipc/", &["net", "tipc"]),
        ("net/wireless/", &["net", "wireless"]),
        ("net/mac80211/", &["net", "wireless"]),
        ("net/", &["net"]),
        ("drivers/tty/", &["tty"]),
        ("drivers/block/", &["block", "disk"]),
        ("drivers/md/", &["sysfs", "block", "disk"]),
        ("drivers/acpi/", &["sysfs", "hotplug"]),
        ("drivers/base/", &["sysfs", "hotplug"]),
        ("drivers/net/wireless/", &["net", "wireless"]),
        ("drivers/net/", &["net"]),
    ];
    table
        .iter()
        .find(|(prefix, _)| object_file.starts_with(prefix))
        .map_or(BROAD_CLASSES, |(_, classes)| classes)
}

/// Kernel modules an exerciser needs beyond those the bundle patches: the
/// loaders load them (where the target has them as modules) before apply,
/// and they stay loaded.
const CLASS_MODULES: &[(&str, &[&str])] = &[
    // An md array's attributes are sysfs's pre-allocated kind.
    ("sysfs", &["md_mod"]),
    ("crypto", &["algif_skcipher", "algif_hash"]),
    // Character sets: hfsplus and exfat's UTF-8, vfat's code page and
    // default I/O character set.
    (
        "disk",
        &["loop", "ext4", "nls_utf8", "nls_cp437", "nls_ascii"],
    ),
    ("block", &["null_blk"]),
    ("tipc", &["dummy"]),
    // Loaded and removed by the wireless exerciser itself.
    ("wireless", &["mac80211_hwsim"]),
];

/// The kernel modules the exercisers of `classes` need, in
/// [`CLASS_MODULES`]'s order.
pub fn class_modules(classes: &[&str]) -> Vec<&'static str> {
    CLASS_MODULES
        .iter()
        .filter(|(class, _)| classes.contains(class))
        .flat_map(|(_, modules)| modules.iter().copied())
        .collect()
}
