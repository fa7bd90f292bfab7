//! [`Manifest::example`]: a valid manifest for tests and examples.

use crate::manifest::{LinkRecord, Manifest, ReplacedFunction, SymbolBinding, SymbolKind, Target};

impl Manifest {
    /// A valid manifest for tests and examples: the `/proc/cmdline` fix for
    /// the pinned Debian kernel. Its build-id is made up.
    pub fn example() -> Manifest {
        Manifest {
            id: "cmdline_fix".to_owned(),
            description: "Show a marker in /proc/cmdline.\nA demonstration patch.".to_owned(),
            cves: vec!["CVE-2024-0001".to_owned()],
            target: Target {
                kernel_release: "6.1.0-50-amd64".to_owned(),
                build_id: "0123456789abcdef0123456789abcdef01234567".to_owned(),
                package_version: Some("6.1.176-1".to_owned()),
            },
            replaced_functions: vec![ReplacedFunction {
                old_name: "cmdline_proc_show".to_owned(),
                old_size: 37,
                new_name: "suture_new_cmdline_proc_show".to_owned(),
                object_file: "fs/proc/cmdline.o".to_owned(),
            }],
            new_functions: vec![],
            symbols: vec![LinkRecord {
                symbol: "suture_old_cmdline_proc_show".to_owned(),
                name: "cmdline_proc_show".to_owned(),
                kind: Some(SymbolKind::Func),
                binding: SymbolBinding::Local,
                object: Some("vmlinux".to_owned()),
                object_file: Some("fs/proc/cmdline.o".to_owned()),
                sympos: Some(1),
                size: Some(37),
            }],
            dependencies: vec![],
            created: 1_700_000_000,
            patchgen_version: "0.1.0".to_owned(),
            kmod_interface: 1,
            skipped_functions: Vec::new(),
            target_modules: Vec::new(),
            bundle_version: 0,
            fixes_up_to: None,
            cve_published: std::collections::BTreeMap::new(),
        }
    }
}
