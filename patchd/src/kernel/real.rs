//! [`Kernel`] over the real `/proc`, `/sys`, `init_module(2)` and
//! `delete_module(2)`.
//!
//! The root prefix lets tests point the file reads and writes at a fake
//! tree; the syscalls have no such switch, so they are only ever exercised as
//! root in the VM tests.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::DeleteModuleFlags;

use super::{
    check_module_name, parse_boot_id, parse_lockdown, parse_modules, Kernel, KernelError,
    PatchAttribute,
};

/// Cap on any kernel text file patchd reads. A real `/proc/kallsyms` with many
/// modules is a few tens of MiB; anything past this is not a kernel file.
const MAX_KERNEL_FILE: u64 = 256 << 20;
/// Cap on `/sys/kernel/notes` (a few hundred bytes on Debian's kernels).
const MAX_NOTES: u64 = 1 << 20;
/// The companion module's sysfs root, relative to the root prefix.
const SUTURE_SYSFS: &str = "sys/kernel/suture";

/// The running kernel, seen through the files under `root`.
#[derive(Debug, Clone)]
pub struct RealKernel {
    root: PathBuf,
}

impl Default for RealKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl RealKernel {
    /// The kernel as seen from `/`.
    pub fn new() -> Self {
        Self::with_root("/")
    }

    /// The kernel's files under another root, e.g. a fake tree in tests.
    /// `init_module` is unaffected and always goes to the running kernel.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Reads a whole file with a size cap; `Ok(None)` if it is absent.
    /// Files under /proc and /sys report size 0, so the cap is enforced while
    /// reading.
    fn read_bytes(&self, path: &Path, cap: u64) -> Result<Option<Vec<u8>>, KernelError> {
        let read_error = |source| KernelError::Read {
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(read_error(error)),
        };
        match crate::files::read_capped(file, cap).map_err(read_error)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(KernelError::TooLarge {
                path: path.to_owned(),
                limit: cap,
            }),
        }
    }

    /// Reads a whole text file with a size cap; `Ok(None)` if it is absent.
    fn read_text(&self, path: &Path) -> Result<Option<String>, KernelError> {
        let Some(bytes) = self.read_bytes(path, MAX_KERNEL_FILE)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| KernelError::Read {
                path: path.to_owned(),
                source: std::io::Error::new(ErrorKind::InvalidData, "not UTF-8 text"),
            })
    }

    fn patch_file(&self, patch: &str, file: &str) -> Result<PathBuf, KernelError> {
        check_module_name(patch)?;
        Ok(self.path(SUTURE_SYSFS).join(patch).join(file))
    }

    fn read_required(&self, relative: &str) -> Result<String, KernelError> {
        let path = self.path(relative);
        self.read_text(&path)?.ok_or_else(|| KernelError::Read {
            source: std::io::Error::from(ErrorKind::NotFound),
            path,
        })
    }
}

impl Kernel for RealKernel {
    fn kallsyms(&self) -> Result<String, KernelError> {
        self.read_required("proc/kallsyms")
    }

    fn lockdown(&self) -> Result<Option<String>, KernelError> {
        let path = self.path("sys/kernel/security/lockdown");
        let Some(text) = self.read_text(&path)? else {
            return Ok(None);
        };
        match parse_lockdown(&text) {
            Some(mode) => Ok(Some(mode.to_owned())),
            None => Err(KernelError::Malformed {
                path,
                line: 1,
                reason: "no bracketed lockdown mode",
            }),
        }
    }

    fn load_module(&self, image: &[u8], params: &str) -> Result<(), KernelError> {
        let params = CString::new(params).map_err(|_| KernelError::ParamsContainNul)?;
        nix::kmod::init_module(image, &params).map_err(KernelError::from_load_errno)
    }

    fn loaded_modules(&self) -> Result<Vec<String>, KernelError> {
        // No /proc/modules: a kernel built without module support
        // (CONFIG_MODULES=n) has no module loaded; status and the other
        // read-only commands then work, and a load fails with the kernel's
        // own error.
        let Some(text) = self.read_text(&self.path("proc/modules"))? else {
            return Ok(Vec::new());
        };
        Ok(parse_modules(&text)
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    fn os_release(&self) -> Result<String, KernelError> {
        let text = self.read_required("proc/sys/kernel/osrelease")?;
        Ok(text.trim_end().to_owned())
    }

    fn os_version(&self) -> Result<String, KernelError> {
        let text = self.read_required("proc/sys/kernel/version")?;
        Ok(text.trim_end().to_owned())
    }

    fn host_name(&self) -> Result<String, KernelError> {
        let text = self.read_required("proc/sys/kernel/hostname")?;
        Ok(text.trim_end().to_owned())
    }

    fn kernel_notes(&self) -> Result<Vec<u8>, KernelError> {
        let path = self.path("sys/kernel/notes");
        self.read_bytes(&path, MAX_NOTES)?
            .ok_or_else(|| KernelError::Read {
                source: std::io::Error::from(ErrorKind::NotFound),
                path,
            })
    }

    fn delete_module(&self, name: &str) -> Result<(), KernelError> {
        check_module_name(name)?;
        let c_name = CString::new(name).map_err(|_| KernelError::InvalidName {
            name: name.escape_debug().to_string(),
        })?;
        nix::kmod::delete_module(&c_name, DeleteModuleFlags::O_NONBLOCK)
            .map_err(|errno| KernelError::from_unload_errno(name, errno))
    }

    fn suture_patches(&self) -> Result<Option<Vec<String>>, KernelError> {
        let dir = self.path(SUTURE_SYSFS);
        let read_error = |source| KernelError::Read {
            path: dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(read_error(error)),
        };
        let mut patches = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_error)?;
            let is_dir = entry.file_type().map_err(read_error)?.is_dir();
            let name = entry.file_name();
            match name.to_str() {
                Some(name) if is_dir && check_module_name(name).is_ok() => {
                    patches.push(name.to_owned());
                }
                _ => {}
            }
        }
        patches.sort();
        Ok(Some(patches))
    }

    fn read_patch_attribute(
        &self,
        patch: &str,
        attribute: PatchAttribute,
    ) -> Result<Option<String>, KernelError> {
        let path = self.patch_file(patch, attribute.file_name())?;
        Ok(self
            .read_text(&path)?
            .map(|text| text.trim_end_matches('\n').to_owned()))
    }

    fn boot_id(&self) -> Result<String, KernelError> {
        let text = self.read_required("proc/sys/kernel/random/boot_id")?;
        parse_boot_id(&text, &self.path("proc/sys/kernel/random/boot_id"))
    }

    fn write_patch_enabled(&self, patch: &str, enabled: bool) -> Result<(), KernelError> {
        let path = self.patch_file(patch, PatchAttribute::Enabled.file_name())?;
        // sysfs hands the store function what one write(2) carries: write
        // the whole value at once, never create the file.
        let value: &[u8] = if enabled { b"1\n" } else { b"0\n" };
        let written = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut file| file.write_all(value));
        match written {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                Err(KernelError::PatchNotRegistered {
                    patch: patch.to_owned(),
                })
            }
            // Permission errors are about this process, not the companion
            // module's answer: they stay I/O errors naming the file.
            Err(error) => match error.raw_os_error().map(Errno::from_raw) {
                Some(errno) if errno != Errno::EACCES && errno != Errno::EPERM => {
                    Err(KernelError::from_switch_errno(patch, enabled, errno))
                }
                _ => Err(KernelError::Write {
                    path,
                    source: error,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc")).expect("mkdir proc");
        std::fs::create_dir_all(root.join("sys/kernel/security")).expect("mkdir sys");
        std::fs::write(
            root.join("proc/kallsyms"),
            "ffffffff81000000 T _text\nffffffffc0000000 t foo\t[bar]\n",
        )
        .expect("write kallsyms");
        std::fs::write(
            root.join("proc/modules"),
            "bar 16384 0 - Live 0xffffffffc0000000 (OE)\nbaz 4096 1 bar, Live 0x0\n",
        )
        .expect("write modules");
        dir
    }

    #[test]
    fn a_kernel_without_proc_modules_has_no_module_loaded() {
        let dir = fake_tree();
        std::fs::remove_file(dir.path().join("proc/modules")).expect("rm");
        let kernel = RealKernel::with_root(dir.path());
        assert_eq!(
            kernel.loaded_modules().expect("modules"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reads_come_from_the_root_prefix() {
        let dir = fake_tree();
        let kernel = RealKernel::with_root(dir.path());
        assert!(kernel.kallsyms().expect("kallsyms").contains("foo\t[bar]"));
        assert_eq!(kernel.loaded_modules().expect("modules"), ["bar", "baz"]);
        assert_eq!(kernel.lockdown().expect("lockdown"), None);

        let lockdown = dir.path().join("sys/kernel/security/lockdown");
        std::fs::write(&lockdown, "none [integrity] confidentiality\n").expect("write");
        assert_eq!(
            kernel.lockdown().expect("lockdown").as_deref(),
            Some("integrity")
        );
        std::fs::write(&lockdown, "garbage\n").expect("write");
        assert!(matches!(
            kernel.lockdown(),
            Err(KernelError::Malformed { .. })
        ));
    }

    #[test]
    fn identity_and_patch_files_come_from_the_root_prefix() {
        let dir = fake_tree();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("mkdir");
        std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-50-amd64\n").expect("w");
        std::fs::write(
            root.join("sys/kernel/notes"),
            super::super::notes::notes_with_build_id("abcd0123"),
        )
        .expect("write notes");
        let kernel = RealKernel::with_root(root);
        let identity = super::super::running_identity(&kernel).expect("identity");
        assert_eq!(identity.release, "6.1.0-50-amd64");
        assert_eq!(identity.build_id, "abcd0123");

        assert_eq!(kernel.suture_patches().expect("no companion"), None);
        let patch = root.join("sys/kernel/suture/cmdline_demo");
        std::fs::create_dir_all(&patch).expect("mkdir patch");
        std::fs::write(root.join("sys/kernel/suture/not_a_dir"), "").expect("w");
        std::fs::write(patch.join("enabled"), "0\n").expect("w");
        std::fs::write(patch.join("last_busy"), "pid 1 comm x at f+0x1/0x2\n").expect("w");
        std::fs::write(patch.join("functions"), "f 0x1 2 g 0x3 4 0 0 -\n").expect("w");
        assert_eq!(
            kernel.suture_patches().expect("patches"),
            Some(vec!["cmdline_demo".to_owned()])
        );
        let read = |attribute| {
            kernel
                .read_patch_attribute("cmdline_demo", attribute)
                .expect("read")
        };
        assert_eq!(read(PatchAttribute::Enabled).as_deref(), Some("0"));
        assert_eq!(
            read(PatchAttribute::LastBusy).as_deref(),
            Some("pid 1 comm x at f+0x1/0x2")
        );
        assert_eq!(read(PatchAttribute::BusyRefusals), None);
        assert_eq!(
            read(PatchAttribute::Functions).as_deref(),
            Some("f 0x1 2 g 0x3 4 0 0 -")
        );
        kernel
            .write_patch_enabled("cmdline_demo", true)
            .expect("write");
        assert_eq!(read(PatchAttribute::Enabled).as_deref(), Some("1"));
        assert!(matches!(
            kernel.write_patch_enabled("absent", true),
            Err(KernelError::PatchNotRegistered { .. })
        ));
        assert!(matches!(
            kernel.read_patch_attribute("../../etc", PatchAttribute::Enabled),
            Err(KernelError::InvalidName { .. })
        ));
    }

    #[test]
    fn the_boot_id_comes_from_the_root_prefix_and_its_absence_is_an_error() {
        let dir = fake_tree();
        let kernel = RealKernel::with_root(dir.path());
        let error = kernel.boot_id().expect_err("absent");
        assert!(
            error.to_string().contains("proc/sys/kernel/random/boot_id"),
            "{error}"
        );
        let random = dir.path().join("proc/sys/kernel/random");
        std::fs::create_dir_all(&random).expect("mkdir");
        std::fs::write(
            random.join("boot_id"),
            "6c9f0e1a-0000-4000-8000-000000000002\n",
        )
        .expect("write");
        assert_eq!(
            kernel.boot_id().expect("boot id"),
            "6c9f0e1a-0000-4000-8000-000000000002"
        );
    }

    #[test]
    fn invalid_names_are_refused_before_delete_module() {
        let kernel = RealKernel::new();
        assert!(matches!(
            kernel.delete_module("../x"),
            Err(KernelError::InvalidName { .. })
        ));
    }

    #[test]
    fn missing_kallsyms_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let kernel = RealKernel::with_root(dir.path());
        let error = kernel.kallsyms().expect_err("no kallsyms");
        assert!(error.to_string().contains("proc/kallsyms"), "{error}");
    }

    #[test]
    fn params_with_nul_are_refused_before_the_syscall() {
        let kernel = RealKernel::new();
        assert!(matches!(
            kernel.load_module(b"", "a=1\0b=2"),
            Err(KernelError::ParamsContainNul)
        ));
    }
}
