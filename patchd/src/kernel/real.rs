//! [`Kernel`] over the real `/proc`, `/sys` and `init_module(2)`.
//!
//! The root prefix lets tests point the reads at a fake tree; the syscall has
//! no such switch, so it is only ever exercised as root in the VM tests.

use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::{parse_lockdown, parse_modules, Kernel, KernelError};

/// Cap on any kernel text file patchd reads. A real `/proc/kallsyms` with many
/// modules is a few tens of MiB; anything past this is not a kernel file.
const MAX_KERNEL_FILE: u64 = 256 << 20;

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

    /// Reads a whole text file with a size cap; `Ok(None)` if it is absent.
    /// Files under /proc report size 0, so the cap is enforced while reading.
    fn read_text(&self, path: &Path) -> Result<Option<String>, KernelError> {
        let read_error = |source| KernelError::Read {
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(read_error(error)),
        };
        let mut text = String::new();
        let limit = MAX_KERNEL_FILE.saturating_add(1);
        file.take(limit)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_KERNEL_FILE {
            return Err(KernelError::TooLarge {
                path: path.to_owned(),
                limit: MAX_KERNEL_FILE,
            });
        }
        Ok(Some(text))
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
        let text = self.read_required("proc/modules")?;
        Ok(parse_modules(&text)
            .into_iter()
            .map(str::to_owned)
            .collect())
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
