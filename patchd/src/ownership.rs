//! Who could have written a file patchd trusts: the trust store's keys and
//! the state directory must be owned by root and writable by no one else,
//! and so must every directory above them (a writable parent lets anyone
//! swap the whole directory). Symbolic links inside those directories are
//! refused, never followed.
//!
//! Root-owned means root, or the user running patchd when that is not root:
//! an unprivileged `patchd verify` cannot be fooled by its own files, and as
//! root (the only way patchd can load anything) the rule is exactly "owned
//! by root".

use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode bits: writable by group, by others; the sticky bit.
const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Why a path is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// The path could not be inspected.
    #[error("cannot inspect {path}")]
    Stat {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A symbolic link where a real file or directory must be.
    #[error("{path} is a symbolic link: patchd does not follow links in the directories it trusts; put the file or directory itself there")]
    Symlink {
        /// The link.
        path: PathBuf,
    },

    /// Owned by someone else than root.
    #[error("{path} is owned by uid {uid}, not by root: run `chown root:root {path}` if its content is trustworthy")]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },

    /// Writable by group or others.
    #[error("{path} is writable by {who} (mode {mode:04o}): run `chmod go-w {path}` if its content is trustworthy")]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// `group`, `others` or `group and others`.
        who: &'static str,
    },
}

/// The owners patchd accepts: root, and the effective user if not root.
pub fn default_owners() -> Vec<u32> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid == 0 {
        vec![0]
    } else {
        vec![0, euid]
    }
}

/// Checks `path` itself (not following a final symbolic link) and every
/// directory above it; returns the metadata of `path`.
pub fn check_trusted_path(path: &Path, owners: &[u32]) -> Result<Metadata, OwnershipError> {
    let metadata = check_trusted_entry(path, owners)?;
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| OwnershipError::Stat {
                path: path.to_owned(),
                source,
            })?
            .join(path)
    };
    for parent in absolute.ancestors().skip(1) {
        let parent_metadata = std::fs::metadata(parent).map_err(|source| OwnershipError::Stat {
            path: parent.to_owned(),
            source,
        })?;
        check_mode(
            parent,
            parent_metadata.uid(),
            parent_metadata.permissions().mode(),
            true,
            owners,
        )?;
    }
    Ok(metadata)
}

/// Checks a file inside a directory already checked: not a link, owner,
/// mode.
pub fn check_trusted_entry(path: &Path, owners: &[u32]) -> Result<Metadata, OwnershipError> {
    let metadata = std::fs::symlink_metadata(path).map_err(|source| OwnershipError::Stat {
        path: path.to_owned(),
        source,
    })?;
    if metadata.file_type().is_symlink() {
        return Err(OwnershipError::Symlink {
            path: path.to_owned(),
        });
    }
    check_mode(
        path,
        metadata.uid(),
        metadata.permissions().mode(),
        false,
        owners,
    )?;
    Ok(metadata)
}

/// The rule itself: the owner is one of `owners`, and neither group nor
/// others may write, except to a sticky directory above (such as `/tmp`),
/// where others cannot rename or remove what they do not own.
pub(crate) fn check_mode(
    path: &Path,
    uid: u32,
    mode: u32,
    sticky_allowed: bool,
    owners: &[u32],
) -> Result<(), OwnershipError> {
    if !owners.contains(&uid) {
        return Err(OwnershipError::Owner {
            path: path.to_owned(),
            uid,
        });
    }
    let sticky = sticky_allowed && mode & STICKY != 0;
    let who = match (mode & GROUP_WRITE != 0, mode & OTHER_WRITE != 0) {
        _ if sticky => return Ok(()),
        (false, false) => return Ok(()),
        (true, false) => "group",
        (false, true) => "others",
        (true, true) => "group and others",
    };
    Err(OwnershipError::Writable {
        path: path.to_owned(),
        mode: mode & 0o7777,
        who,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_mode_rules() {
        let path = Path::new("/etc/suture/keys");
        // (uid, mode, sticky allowed, ok?)
        let cases = [
            (0, 0o755, false, true),
            (0, 0o700, false, true),
            (0, 0o644, false, true),
            (1000, 0o755, false, false),
            (0, 0o775, false, false),
            (0, 0o757, false, false),
            (0, 0o777, false, false),
            (0, 0o1777, true, true),
            (0, 0o1777, false, false),
            (1000, 0o1777, true, false),
        ];
        for (uid, mode, sticky, ok) in cases {
            let result = check_mode(path, uid, mode, sticky, &[0]);
            assert_eq!(
                result.is_ok(),
                ok,
                "uid {uid} mode {mode:o} sticky {sticky}"
            );
        }
    }

    #[test]
    fn errors_say_what_to_run() {
        let path = Path::new("/etc/suture/keys");
        let owner = check_mode(path, 1000, 0o755, false, &[0]).expect_err("owner");
        assert!(
            owner
                .to_string()
                .contains("chown root:root /etc/suture/keys"),
            "{owner}"
        );
        let writable = check_mode(path, 0, 0o777, false, &[0]).expect_err("mode");
        let text = writable.to_string();
        assert!(
            text.contains("chmod go-w /etc/suture/keys")
                && text.contains("group and others")
                && text.contains("0777"),
            "{text}"
        );
    }

    #[test]
    fn a_symlink_is_refused_and_a_private_dir_passes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let owners = default_owners();
        check_trusted_path(&real, &owners).expect("a private directory is trusted");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(matches!(
            check_trusted_path(&link, &owners),
            Err(OwnershipError::Symlink { .. })
        ));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(
            check_trusted_path(&real, &owners),
            Err(OwnershipError::Writable { .. })
        ));
        let inner = real.join("inner");
        std::fs::create_dir(&inner).expect("mkdir");
        assert!(
            matches!(
                check_trusted_path(&inner, &owners),
                Err(OwnershipError::Writable { .. })
            ),
            "a world-writable parent is refused"
        );
    }
}
