//! Test fixtures shared by the unit tests: minimal kernel-module images,
//! a kallsyms that matches them, signed bundles and a test environment
//! (trust store, state directory, fake kernel and clock) in a temporary
//! directory. Compiled only for tests.

use std::path::{Path, PathBuf};

use suture_bundle::manifest::{LinkRecord, Manifest, SymbolBinding, SymbolKind};
use suture_bundle::{SigningKey, PUBLIC_KEY_HEADER};

use crate::clock::FakeClock;
use crate::fake_kernel::{FakeKernel, FAKE_BUILD_ID, FAKE_RELEASE};
use crate::transaction::session::{Config, Session};
use crate::transaction::switch::RetryPolicy;

/// kallsyms for the fixtures: what the companion module and the patch
/// modules below need, plus an export so the export rule applies.
pub(crate) const KALLSYMS: &str = "ffffffff81000000 T _text\n\
     ffffffff81111110 T _printk\n\
     ffffffff81234560 t cmdline_proc_show\n\
     ffffffff81234590 t cmdline_proc_init\n\
     ffffffff81500000 T stack_trace_save_tsk\n\
     ffffffff81500100 T stack_trace_other\n\
     ffffffff82222220 r __ksymtab__printk\n";

/// The symbols a patch module of [`patch_image`] leaves undefined.
const PATCH_UNDEFINED: [&str; 3] = [
    "suture_register_patch",
    "suture0_old__cmdline_proc_show",
    "_printk",
];

/// A minimal x86-64 relocatable ELF with `name=NAME` in `.modinfo` and the
/// given undefined global symbols: enough for the link step, which reads
/// only the header, `.symtab`, `.strtab` and `.modinfo`.
pub(crate) fn module_image(name: &str, undefined: &[&str]) -> Vec<u8> {
    module_image_defining(name, undefined, &[])
}

/// [`module_image`] that also defines `defined` (global functions in
/// `.modinfo`, which is all the readers look at: they are not undefined).
pub(crate) fn module_image_defining(name: &str, undefined: &[&str], defined: &[&str]) -> Vec<u8> {
    let modinfo = format!("name={name}\0").into_bytes();
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    let entries = undefined
        .iter()
        .map(|symbol| (symbol, 0x10u8, 0u16)) // STB_GLOBAL, STT_NOTYPE; SHN_UNDEF
        .chain(defined.iter().map(|symbol| (symbol, 0x12u8, 1u16))); // STT_FUNC in section 1
    for (symbol, info, shndx) in entries {
        let st_name = u32::try_from(strtab.len()).expect("small");
        strtab.extend_from_slice(symbol.as_bytes());
        strtab.push(0);
        symtab.extend_from_slice(&st_name.to_le_bytes());
        symtab.push(info);
        symtab.push(0);
        symtab.extend_from_slice(&shndx.to_le_bytes());
        symtab.extend_from_slice(&[0; 16]);
    }
    let shstrtab = b"\0.modinfo\0.symtab\0.strtab\0.shstrtab\0".to_vec();
    let mut image = vec![0u8; 64];
    let place = |image: &mut Vec<u8>, data: &[u8]| {
        while image.len() % 8 != 0 {
            image.push(0);
        }
        let offset = image.len();
        image.extend_from_slice(data);
        (offset as u64, data.len() as u64)
    };
    let modinfo_at = place(&mut image, &modinfo);
    let symtab_at = place(&mut image, &symtab);
    let strtab_at = place(&mut image, &strtab);
    let shstrtab_at = place(&mut image, &shstrtab);
    while image.len() % 8 != 0 {
        image.push(0);
    }
    let shoff = image.len() as u64;
    // (name, type, flags, (offset, size), link, info, align, entsize)
    type Header = (u32, u32, u64, (u64, u64), u32, u32, u64, u64);
    let sections: [Header; 5] = [
        (0, 0, 0, (0, 0), 0, 0, 0, 0),
        (1, 1, 2, modinfo_at, 0, 0, 1, 0),
        (10, 2, 0, symtab_at, 3, 1, 8, 24),
        (18, 3, 0, strtab_at, 0, 0, 1, 0),
        (26, 3, 0, shstrtab_at, 0, 0, 1, 0),
    ];
    for (name, kind, flags, (offset, size), link, info, align, entsize) in sections {
        image.extend_from_slice(&name.to_le_bytes());
        image.extend_from_slice(&kind.to_le_bytes());
        image.extend_from_slice(&flags.to_le_bytes());
        image.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
        image.extend_from_slice(&offset.to_le_bytes());
        image.extend_from_slice(&size.to_le_bytes());
        image.extend_from_slice(&link.to_le_bytes());
        image.extend_from_slice(&info.to_le_bytes());
        image.extend_from_slice(&align.to_le_bytes());
        image.extend_from_slice(&entsize.to_le_bytes());
    }
    let header = &mut image[..64];
    header[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    header[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    header[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    header[20..24].copy_from_slice(&1u32.to_le_bytes());
    header[40..48].copy_from_slice(&shoff.to_le_bytes());
    header[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    header[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    header[60..62].copy_from_slice(&5u16.to_le_bytes()); // e_shnum
    header[62..64].copy_from_slice(&4u16.to_le_bytes()); // e_shstrndx
    image
}

/// The companion module: it links `stack_trace_save_tsk`.
pub(crate) fn companion_image() -> Vec<u8> {
    module_image("suture", &["stack_trace_save_tsk"])
}

/// A patch module named `id` that registers with the companion module.
pub(crate) fn patch_image(id: &str) -> Vec<u8> {
    module_image_defining(id, &PATCH_UNDEFINED, &[PATCH_REPLACEMENT])
}

/// The replacement function a patch module of [`patch_image`] defines:
/// the `new_name` of [`Manifest::example`]'s replaced function.
pub(crate) const PATCH_REPLACEMENT: &str = "suture_new_cmdline_proc_show";

/// The signing key of the tests, and its public key file's text.
pub(crate) fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Another key, not in the trust store.
pub(crate) fn stranger_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

pub(crate) fn public_key_text(key: &SigningKey) -> String {
    let hex: String = key
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{PUBLIC_KEY_HEADER}\n{hex}\n")
}

/// A manifest for patch `id` on the fake kernel.
pub(crate) fn manifest(id: &str) -> Manifest {
    let mut manifest = Manifest::example();
    manifest.id = id.to_owned();
    manifest.target.kernel_release = FAKE_RELEASE.to_owned();
    manifest.target.build_id = FAKE_BUILD_ID.to_owned();
    manifest.cves = vec!["CVE-2024-0001".to_owned()];
    manifest.symbols = vec![LinkRecord {
        symbol: "suture0_old__cmdline_proc_show".to_owned(),
        name: "cmdline_proc_show".to_owned(),
        kind: Some(SymbolKind::Func),
        binding: SymbolBinding::Local,
        object: Some("vmlinux".to_owned()),
        object_file: Some("fs/proc/cmdline.o".to_owned()),
        sympos: None,
        size: Some(37),
    }];
    manifest
}

/// A signed bundle of `manifest` with a patch module of its id.
pub(crate) fn bundle_bytes(manifest: &Manifest, key: &SigningKey) -> Vec<u8> {
    suture_bundle::build(manifest, &patch_image(&manifest.id), key).expect("valid bundle")
}

/// A temporary host: trust store with the test key, state directory,
/// companion module file, bundles directory, a fake clock.
pub(crate) struct TestHost {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clock: FakeClock,
}

impl TestHost {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).expect("mkdir keys");
        std::fs::write(keys.join("test.pub"), public_key_text(&signing_key())).expect("key");
        std::fs::write(dir.path().join("suture.ko"), companion_image()).expect("kmod");
        std::fs::create_dir(dir.path().join("in")).expect("mkdir in");
        Self {
            dir,
            clock: FakeClock::new(1_700_000_000),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config(&self) -> Config {
        Config {
            state_dir: self.path().join("state"),
            keys_dir: self.path().join("keys"),
            kmod: self.path().join("suture.ko"),
            // No DKMS lookup unless a test asks for one: the host's
            // /lib/modules is never read.
            dkms_modules_dir: None,
            retry: RetryPolicy::default(),
            trusted_owners: crate::ownership::default_owners(),
            crash_guard_uptime_secs: crate::transaction::session::DEFAULT_CRASH_GUARD_UPTIME_SECS,
            // Tests never write to the host's system log.
            audit_syslog: None,
        }
    }

    /// Writes a bundle of patch `id` signed by the test key.
    pub(crate) fn bundle(&self, id: &str) -> PathBuf {
        self.bundle_of(&manifest(id), &signing_key())
    }

    pub(crate) fn bundle_of(&self, manifest: &Manifest, key: &SigningKey) -> PathBuf {
        let path = self
            .path()
            .join("in")
            .join(format!("{}.bundle", manifest.id));
        std::fs::write(&path, bundle_bytes(manifest, key)).expect("write bundle");
        path
    }

    pub(crate) fn session<'k>(&'k self, kernel: &'k FakeKernel) -> Session<'k> {
        Session::open(kernel, &self.clock, self.config()).expect("session opens")
    }

    /// A kernel with the fixtures' kallsyms and no lockdown.
    pub(crate) fn kernel() -> FakeKernel {
        FakeKernel::new(KALLSYMS).with_lockdown(Some("none"))
    }
}
