//! A recording [`Kernel`] for tests: serves canned `/proc` and `/sys` text,
//! records every call in order, and never touches the running kernel.
//!
//! It is public (not `cfg(test)`) so integration tests and other crates'
//! tests can drive patchd's logic without root.

use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;

use super::{Kernel, KernelError};

/// One call made through the [`Kernel`] trait, as [`FakeKernel`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCall {
    /// [`Kernel::kallsyms`].
    Kallsyms,
    /// [`Kernel::lockdown`].
    Lockdown,
    /// [`Kernel::load_module`], with the exact bytes and parameters passed.
    LoadModule {
        /// The module image handed to `init_module`.
        image: Vec<u8>,
        /// The parameter string.
        params: String,
    },
    /// [`Kernel::loaded_modules`].
    LoadedModules,
}

/// A kernel made of canned answers that records what was asked of it.
#[derive(Debug, Default)]
pub struct FakeKernel {
    kallsyms: String,
    lockdown: Option<String>,
    modules: Vec<String>,
    load_errno: Option<Errno>,
    calls: Mutex<Vec<KernelCall>>,
}

impl FakeKernel {
    /// A kernel whose `/proc/kallsyms` is `kallsyms`, with no lockdown file,
    /// no loaded modules, and loads that succeed.
    pub fn new(kallsyms: impl Into<String>) -> Self {
        Self {
            kallsyms: kallsyms.into(),
            ..Self::default()
        }
    }

    /// Sets the active lockdown mode (`Some("none")`, `Some("integrity")`, ...)
    /// or removes the lockdown file (`None`).
    #[must_use]
    pub fn with_lockdown(mut self, mode: Option<&str>) -> Self {
        self.lockdown = mode.map(str::to_owned);
        self
    }

    /// Sets the names `/proc/modules` lists.
    #[must_use]
    pub fn with_loaded_modules<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.modules = names.into_iter().map(Into::into).collect();
        self
    }

    /// Makes every [`Kernel::load_module`] fail as `init_module` would with
    /// `errno` (after recording the call).
    #[must_use]
    pub fn failing_load_with(mut self, errno: Errno) -> Self {
        self.load_errno = Some(errno);
        self
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<KernelCall> {
        self.lock().clone()
    }

    /// The images passed to [`Kernel::load_module`] so far, in order.
    pub fn loaded_images(&self) -> Vec<Vec<u8>> {
        self.lock()
            .iter()
            .filter_map(|call| match call {
                KernelCall::LoadModule { image, .. } => Some(image.clone()),
                _ => None,
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<KernelCall>> {
        // A test that panicked while holding the lock already failed; the
        // record itself is still consistent, so keep serving it.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: KernelCall) {
        self.lock().push(call);
    }
}

impl Kernel for FakeKernel {
    fn kallsyms(&self) -> Result<String, KernelError> {
        self.record(KernelCall::Kallsyms);
        Ok(self.kallsyms.clone())
    }

    fn lockdown(&self) -> Result<Option<String>, KernelError> {
        self.record(KernelCall::Lockdown);
        Ok(self.lockdown.clone())
    }

    fn load_module(&self, image: &[u8], params: &str) -> Result<(), KernelError> {
        self.record(KernelCall::LoadModule {
            image: image.to_vec(),
            params: params.to_owned(),
        });
        if params.contains('\0') {
            return Err(KernelError::ParamsContainNul);
        }
        match self.load_errno {
            Some(errno) => Err(KernelError::from_load_errno(errno)),
            None => Ok(()),
        }
    }

    fn loaded_modules(&self) -> Result<Vec<String>, KernelError> {
        self.record(KernelCall::LoadedModules);
        Ok(self.modules.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_every_call_in_order() {
        let kernel = FakeKernel::new("ffffffff81000000 T _text\n")
            .with_lockdown(Some("none"))
            .with_loaded_modules(["suture"]);
        assert_eq!(
            kernel.lockdown().expect("lockdown").as_deref(),
            Some("none")
        );
        assert!(kernel.kallsyms().expect("kallsyms").contains("_text"));
        assert_eq!(kernel.loaded_modules().expect("modules"), ["suture"]);
        kernel.load_module(b"\x7fELF", "a=1").expect("load");
        assert_eq!(
            kernel.calls(),
            [
                KernelCall::Lockdown,
                KernelCall::Kallsyms,
                KernelCall::LoadedModules,
                KernelCall::LoadModule {
                    image: b"\x7fELF".to_vec(),
                    params: "a=1".to_owned(),
                },
            ]
        );
        assert_eq!(kernel.loaded_images(), [b"\x7fELF".to_vec()]);
    }

    #[test]
    fn failing_load_maps_the_errno_and_still_records() {
        let kernel = FakeKernel::new("").failing_load_with(Errno::EKEYREJECTED);
        assert!(matches!(
            kernel.load_module(b"x", ""),
            Err(KernelError::SignatureRejected)
        ));
        assert_eq!(kernel.loaded_images().len(), 1);
    }
}
