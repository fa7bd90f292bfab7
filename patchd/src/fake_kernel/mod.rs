//! A recording [`Kernel`] for tests: serves canned `/proc` and `/sys` text,
//! simulates the module list and the companion module's sysfs, records every
//! call in order, and never touches the running kernel.
//!
//! The simulation follows docs/kmod-interface.md: loading `suture` creates
//! `/sys/kernel/suture/` and adds its exports to kallsyms; a module loaded
//! while the companion is present registers a patch of its own name
//! (disabled); a patch module that needs the companion's exports does not
//! load without it; writing `enabled` switches or is refused (`EBUSY` a set
//! number of times, or another errno); `delete_module` of an enabled patch,
//! or of the companion while patches remain, fails with `EBUSY`. A patch's
//! `functions` file lists those set with [`FakeKernel::with_functions`],
//! redirected by direct calls while enabled unless
//! [`FakeKernel::with_ftrace_handler`] says otherwise.
//!
//! It is public (not `cfg(test)`) so integration tests and other crates'
//! tests can drive patchd's logic without root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;

use crate::kernel::notes::notes_with_build_id;
use crate::kernel::{check_module_name, Kernel, KernelError, PatchAttribute, COMPANION_MODULE};
use crate::link::{module_name, undefined_symbols};

mod calls;
mod functions;

pub use calls::KernelCall;
use functions::{functions_file, FakeFunction};

/// The release a [`FakeKernel`] runs unless told otherwise.
pub const FAKE_RELEASE: &str = "6.1.0-50-amd64";
/// The version text (`uname -v`) a [`FakeKernel`] shows unless told
/// otherwise: Debian's, naming the package version.
pub const FAKE_VERSION: &str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)";
/// The host name a [`FakeKernel`] shows.
pub const FAKE_HOST_NAME: &str = "server1";
/// The build-id a [`FakeKernel`] runs unless told otherwise.
pub const FAKE_BUILD_ID: &str = "06f8bde30046985060c60820f7a11515a33afb06";
/// The boot id a [`FakeKernel`] reports unless told otherwise;
/// [`FakeKernel::reboot`] counts up its last digits.
pub const FAKE_BOOT_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The `last_busy` text of a simulated `EBUSY` refusal.
pub const FAKE_LAST_BUSY: &str =
    "pid 4242 comm suture_busy at suture_target_sleep+0x94/0xd0 [suture_target]";

/// What the companion module adds to kallsyms once loaded: its exports.
const COMPANION_KALLSYMS: &str = "ffffffffc0100000 T suture_register_patch\t[suture]\n\
     ffffffffc0100100 T suture_unregister_patch\t[suture]\n\
     ffffffffc0102000 r __ksymtab_suture_register_patch\t[suture]\n\
     ffffffffc0102010 r __ksymtab_suture_unregister_patch\t[suture]\n";

/// A registered patch as the companion module shows it in sysfs.
#[derive(Debug, Clone, Default)]
struct FakePatch {
    enabled: bool,
    busy_refusals: u64,
    last_busy: String,
}

/// What the simulated kernel holds and what it was told to refuse.
#[derive(Debug, Default)]
struct Simulation {
    /// `/proc/modules`, in load order.
    modules: Vec<String>,
    /// `/sys/kernel/suture/<patch>/`.
    patches: BTreeMap<String, FakePatch>,
    /// Remaining `EBUSY` refusals per patch, for enabling and disabling.
    busy_enable: HashMap<String, u32>,
    busy_disable: HashMap<String, u32>,
    /// Switches refused with another errno, per patch and direction.
    switch_errno: HashMap<(String, bool), Errno>,
    /// `init_module` failures per module name.
    load_errno_of: HashMap<String, Errno>,
    /// `delete_module` failures per module name.
    delete_errno_of: HashMap<String, Errno>,
    /// Modules that load but do not register a patch.
    unregistered: BTreeSet<String>,
    /// The functions each patch replaces (its `functions` file), by name.
    functions: HashMap<String, Vec<FakeFunction>>,
    /// `/proc/sys/kernel/random/boot_id`; `None`: unreadable.
    boot_id: Option<String>,
}

impl Simulation {
    fn companion_loaded(&self) -> bool {
        self.modules.iter().any(|m| m == COMPANION_MODULE)
    }
}

/// A kernel made of canned answers that records what was asked of it.
#[derive(Debug)]
pub struct FakeKernel {
    kallsyms: String,
    lockdown: Option<String>,
    release: String,
    version: String,
    notes: Vec<u8>,
    load_errno: Option<Errno>,
    calls: Mutex<Vec<KernelCall>>,
    simulation: Mutex<Simulation>,
}

impl Default for FakeKernel {
    fn default() -> Self {
        Self::new("")
    }
}

impl FakeKernel {
    /// A kernel whose `/proc/kallsyms` is `kallsyms`, running
    /// [`FAKE_RELEASE`] with [`FAKE_BUILD_ID`], with no lockdown file, no
    /// loaded modules, and loads that succeed.
    pub fn new(kallsyms: impl Into<String>) -> Self {
        Self {
            kallsyms: kallsyms.into(),
            lockdown: None,
            release: FAKE_RELEASE.to_owned(),
            version: FAKE_VERSION.to_owned(),
            notes: notes_with_build_id(FAKE_BUILD_ID),
            load_errno: None,
            calls: Mutex::default(),
            simulation: Mutex::new(Simulation {
                boot_id: Some(FAKE_BOOT_ID.to_owned()),
                ..Simulation::default()
            }),
        }
    }

    /// Sets this boot's id (as [`FAKE_BOOT_ID`] reads).
    #[must_use]
    pub fn with_boot_id(mut self, id: &str) -> Self {
        self.sim_mut().boot_id = Some(id.to_owned());
        self
    }

    /// Makes [`Kernel::boot_id`] fail, as when the file cannot be read.
    #[must_use]
    pub fn without_boot_id(mut self) -> Self {
        self.sim_mut().boot_id = None;
        self
    }

    /// Changes this boot's id now (`None`: unreadable from now on).
    pub fn set_boot_id(&self, id: Option<&str>) {
        self.sim().boot_id = id.map(str::to_owned);
    }

    /// Simulates a reboot: every module is gone, the companion's sysfs
    /// with them, and the boot id is the next one (its last 12 digits
    /// counted up). Refusals and functions set up with the builders stay.
    pub fn reboot(&self) {
        let mut sim = self.sim();
        sim.modules.clear();
        sim.patches.clear();
        sim.boot_id = Some(next_boot_id(sim.boot_id.as_deref()));
    }

    /// Sets the active lockdown mode (`Some("none")`, `Some("integrity")`, ...)
    /// or removes the lockdown file (`None`).
    #[must_use]
    pub fn with_lockdown(mut self, mode: Option<&str>) -> Self {
        self.lockdown = mode.map(str::to_owned);
        self
    }

    /// Sets the running kernel's release and build-id (hex).
    #[must_use]
    pub fn with_identity(mut self, release: &str, build_id: &str) -> Self {
        self.release = release.to_owned();
        self.notes = notes_with_build_id(build_id);
        self
    }

    /// Sets the running kernel's version text (`uname -v`).
    #[must_use]
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Sets the raw bytes of `/sys/kernel/notes`.
    #[must_use]
    pub fn with_notes(mut self, notes: Vec<u8>) -> Self {
        self.notes = notes;
        self
    }

    /// Sets the names `/proc/modules` lists. Listing `suture` makes the
    /// companion module present (an empty `/sys/kernel/suture/`).
    #[must_use]
    pub fn with_loaded_modules<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sim_mut().modules = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a loaded patch module `name` registered with the companion
    /// module (which must be listed too), enabled or not.
    #[must_use]
    pub fn with_patch(mut self, name: &str, enabled: bool) -> Self {
        let sim = self.sim_mut();
        sim.modules.push(name.to_owned());
        sim.patches.insert(
            name.to_owned(),
            FakePatch {
                enabled,
                ..FakePatch::default()
            },
        );
        self
    }

    /// Makes every [`Kernel::load_module`] fail as `init_module` would with
    /// `errno` (after recording the call).
    #[must_use]
    pub fn failing_load_with(mut self, errno: Errno) -> Self {
        self.load_errno = Some(errno);
        self
    }

    /// Makes loading the module named `name` fail with `errno`.
    #[must_use]
    pub fn failing_load_of(mut self, name: &str, errno: Errno) -> Self {
        self.sim_mut().load_errno_of.insert(name.to_owned(), errno);
        self
    }

    /// Makes `delete_module(name)` fail with `errno`.
    #[must_use]
    pub fn failing_delete_of(mut self, name: &str, errno: Errno) -> Self {
        self.sim_mut()
            .delete_errno_of
            .insert(name.to_owned(), errno);
        self
    }

    /// Makes the next `times` attempts to enable `patch` fail with `EBUSY`,
    /// each counted in `busy_refusals` and named in `last_busy`.
    #[must_use]
    pub fn busy_on_enable(mut self, patch: &str, times: u32) -> Self {
        self.sim_mut().busy_enable.insert(patch.to_owned(), times);
        self
    }

    /// Makes the next `times` attempts to disable `patch` fail with `EBUSY`.
    #[must_use]
    pub fn busy_on_disable(mut self, patch: &str, times: u32) -> Self {
        self.sim_mut().busy_disable.insert(patch.to_owned(), times);
        self
    }

    /// Makes every attempt to switch `patch` to `enabled` fail with `errno`.
    #[must_use]
    pub fn failing_switch_of(mut self, patch: &str, enabled: bool, errno: Errno) -> Self {
        self.sim_mut()
            .switch_errno
            .insert((patch.to_owned(), enabled), errno);
        self
    }

    /// Makes the module `name` load without registering a patch.
    #[must_use]
    pub fn without_registration(mut self, name: &str) -> Self {
        self.sim_mut().unregistered.insert(name.to_owned());
        self
    }

    /// Sets the functions `patch` replaces, as its `functions` file lists
    /// them once registered: redirected by a direct call while enabled,
    /// not attached (`-`) otherwise. Without it the file is empty.
    #[must_use]
    pub fn with_functions(mut self, patch: &str, functions: &[&str]) -> Self {
        let list = functions.iter().map(|f| FakeFunction::direct(f)).collect();
        self.sim_mut().functions.insert(patch.to_owned(), list);
        self
    }

    /// Puts `function` of `patch` on the ftrace handler path while enabled
    /// (`ftrace` in the file), as when another ftrace user holds it; adds
    /// it to the patch's functions if it is not listed.
    #[must_use]
    pub fn with_ftrace_handler(mut self, patch: &str, function: &str) -> Self {
        let list = self
            .sim_mut()
            .functions
            .entry(patch.to_owned())
            .or_default();
        if !list.iter().any(|f| f.name == function) {
            list.push(FakeFunction::direct(function));
        }
        for f in list.iter_mut().filter(|f| f.name == function) {
            f.ftrace_handler = true;
        }
        self
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<KernelCall> {
        self.lock().clone()
    }

    /// The calls so far that changed the kernel, in order.
    pub fn changes(&self) -> Vec<KernelCall> {
        self.lock()
            .iter()
            .filter(|call| call.changes_kernel())
            .cloned()
            .collect()
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

    /// The modules loaded now, in load order.
    pub fn modules_now(&self) -> Vec<String> {
        self.sim().modules.clone()
    }

    /// Whether `patch` is registered now, and if so whether it is enabled.
    pub fn patch_enabled(&self, patch: &str) -> Option<bool> {
        self.sim().patches.get(patch).map(|p| p.enabled)
    }

    /// Forgets the recorded calls (the simulated state stays).
    pub fn clear_calls(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<KernelCall>> {
        // A test that panicked while holding the lock already failed; the
        // record itself is still consistent, so keep serving it.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sim(&self) -> MutexGuard<'_, Simulation> {
        self.simulation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sim_mut(&mut self) -> &mut Simulation {
        self.simulation
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: KernelCall) {
        self.lock().push(call);
    }
}

/// The boot id after `id`: its last 12 characters as a number, plus one.
fn next_boot_id(id: Option<&str>) -> String {
    let id = id.unwrap_or(FAKE_BOOT_ID);
    let cut = id.len().saturating_sub(12);
    let (head, tail) = if id.is_char_boundary(cut) {
        id.split_at(cut)
    } else {
        (id, "")
    };
    let next = u64::from_str_radix(tail, 16).unwrap_or(0).wrapping_add(1);
    format!("{head}{next:012x}")
}

impl Kernel for FakeKernel {
    fn kallsyms(&self) -> Result<String, KernelError> {
        self.record(KernelCall::Kallsyms);
        let mut text = self.kallsyms.clone();
        if self.sim().companion_loaded() {
            text.push_str(COMPANION_KALLSYMS);
        }
        Ok(text)
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
        if let Some(errno) = self.load_errno {
            return Err(KernelError::from_load_errno(errno));
        }
        // Images that are not modules (unit tests of the load path) are
        // loaded without a name, as before this simulation existed.
        let Some(name) = module_name(image).ok().flatten() else {
            return Ok(());
        };
        let mut sim = self.sim();
        if let Some(&errno) = sim.load_errno_of.get(&name) {
            return Err(KernelError::from_load_errno(errno));
        }
        if sim.modules.contains(&name) {
            return Err(KernelError::ModuleExists);
        }
        let needs_companion = undefined_symbols(image)
            .unwrap_or_default()
            .iter()
            .any(|symbol| symbol.starts_with("suture_register_patch"));
        let companion = sim.companion_loaded();
        if needs_companion && !companion {
            return Err(KernelError::UnknownSymbol);
        }
        sim.modules.push(name.clone());
        if companion && name != COMPANION_MODULE && !sim.unregistered.contains(&name) {
            sim.patches.insert(name, FakePatch::default());
        }
        Ok(())
    }

    fn loaded_modules(&self) -> Result<Vec<String>, KernelError> {
        self.record(KernelCall::LoadedModules);
        Ok(self.sim().modules.clone())
    }

    fn os_release(&self) -> Result<String, KernelError> {
        self.record(KernelCall::OsRelease);
        Ok(self.release.clone())
    }

    fn os_version(&self) -> Result<String, KernelError> {
        self.record(KernelCall::OsVersion);
        Ok(self.version.clone())
    }

    fn host_name(&self) -> Result<String, KernelError> {
        self.record(KernelCall::HostName);
        Ok(FAKE_HOST_NAME.to_owned())
    }

    fn kernel_notes(&self) -> Result<Vec<u8>, KernelError> {
        self.record(KernelCall::KernelNotes);
        Ok(self.notes.clone())
    }

    fn delete_module(&self, name: &str) -> Result<(), KernelError> {
        self.record(KernelCall::DeleteModule {
            name: name.to_owned(),
        });
        check_module_name(name)?;
        let mut sim = self.sim();
        if let Some(&errno) = sim.delete_errno_of.get(name) {
            return Err(KernelError::from_unload_errno(name, errno));
        }
        let Some(index) = sim.modules.iter().position(|m| m == name) else {
            return Err(KernelError::from_unload_errno(name, Errno::ENOENT));
        };
        let in_use = if name == COMPANION_MODULE {
            !sim.patches.is_empty()
        } else {
            sim.patches.get(name).is_some_and(|p| p.enabled)
        };
        if in_use {
            return Err(KernelError::from_unload_errno(name, Errno::EBUSY));
        }
        sim.modules.remove(index);
        sim.patches.remove(name);
        Ok(())
    }

    fn suture_patches(&self) -> Result<Option<Vec<String>>, KernelError> {
        self.record(KernelCall::SuturePatches);
        let sim = self.sim();
        Ok(sim
            .companion_loaded()
            .then(|| sim.patches.keys().cloned().collect()))
    }

    fn read_patch_attribute(
        &self,
        patch: &str,
        attribute: PatchAttribute,
    ) -> Result<Option<String>, KernelError> {
        self.record(KernelCall::ReadPatchAttribute {
            patch: patch.to_owned(),
            attribute,
        });
        check_module_name(patch)?;
        let sim = self.sim();
        let functions = sim.functions.get(patch).map_or(&[][..], Vec::as_slice);
        Ok(sim.patches.get(patch).map(|p| match attribute {
            // The fake registers each patch under its module's name.
            PatchAttribute::Module => patch.to_owned(),
            PatchAttribute::Enabled => u8::from(p.enabled).to_string(),
            PatchAttribute::LastBusy => p.last_busy.clone(),
            PatchAttribute::BusyRefusals => p.busy_refusals.to_string(),
            PatchAttribute::Functions => functions_file(functions, p.enabled)
                .trim_end_matches('\n')
                .to_owned(),
        }))
    }

    fn write_patch_enabled(&self, patch: &str, enabled: bool) -> Result<(), KernelError> {
        self.record(KernelCall::WritePatchEnabled {
            patch: patch.to_owned(),
            enabled,
        });
        check_module_name(patch)?;
        let mut sim = self.sim();
        let Some(current) = sim.patches.get(patch).map(|p| p.enabled) else {
            return Err(KernelError::PatchNotRegistered {
                patch: patch.to_owned(),
            });
        };
        // Writing the current state is a no-op, as in the companion module.
        if current == enabled {
            return Ok(());
        }
        if let Some(&errno) = sim.switch_errno.get(&(patch.to_owned(), enabled)) {
            return Err(KernelError::from_switch_errno(patch, enabled, errno));
        }
        let busy = if enabled {
            &mut sim.busy_enable
        } else {
            &mut sim.busy_disable
        };
        let refused = match busy.get_mut(patch) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        let Some(state) = sim.patches.get_mut(patch) else {
            return Err(KernelError::PatchNotRegistered {
                patch: patch.to_owned(),
            });
        };
        if refused {
            state.busy_refusals = state.busy_refusals.saturating_add(1);
            FAKE_LAST_BUSY.clone_into(&mut state.last_busy);
            return Err(KernelError::from_switch_errno(patch, enabled, Errno::EBUSY));
        }
        state.enabled = enabled;
        Ok(())
    }

    fn boot_id(&self) -> Result<String, KernelError> {
        self.record(KernelCall::BootId);
        self.sim().boot_id.clone().ok_or_else(|| KernelError::Read {
            path: "/proc/sys/kernel/random/boot_id".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        })
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
