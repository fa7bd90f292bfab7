//! The target's own Debian modules a guest needs (`GuestSpec::kernel_modules`),
//! from the cache entry's `modules/`: found by module name whatever the
//! file's compression (Debian 12 ships `.ko`, Debian 13 `.ko.xz`), with
//! their dependencies from each module's `.modinfo`, and handed to the
//! guest decompressed (busybox's `insmod` loads plain `.ko` files). A
//! module the kernel has built in (`modules.builtin`) needs no loading.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use crate::{io_err, HarnessError, Result, Target};

/// Compressed module suffixes this rig reads, after `.ko`.
const COMPRESSIONS: &[&str] = &["", ".xz", ".zst"];

/// A decompressed module larger than this is refused (Debian's largest
/// are tens of MB).
const MAX_MODULE_SIZE: u64 = 256 << 20;

/// The target's Debian modules `names` and everything they depend on
/// (`.modinfo`'s `depends`, and `softdep` `pre:` modules), dependencies
/// first. Built-in modules are left out.
pub fn kernel_module_closure(target: &Target, names: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let tree = ModuleTree::read(&target.dir.join("modules"))?;
    let mut order = Vec::new();
    for name in names {
        visit(&tree, name, 0, &mut order)?;
    }
    Ok(order)
}

/// The module file `path` as the guest loads it: decompressed.
pub fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(io_err("cannot open", path))?;
    let name = path.to_string_lossy();
    let mut data = Vec::new();
    let read = if name.ends_with(".ko.xz") {
        xz2::read::XzDecoder::new(file)
            .take(MAX_MODULE_SIZE + 1)
            .read_to_end(&mut data)
    } else if name.ends_with(".ko.zst") {
        ruzstd::decoding::StreamingDecoder::new(file)
            .map_err(std::io::Error::other)
            .and_then(|d| d.take(MAX_MODULE_SIZE + 1).read_to_end(&mut data))
    } else {
        file.take(MAX_MODULE_SIZE + 1).read_to_end(&mut data)
    };
    read.map_err(io_err("cannot read (or decompress)", path))?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > MAX_MODULE_SIZE {
        return Err(HarnessError::Io {
            what: "module larger than the rig reads",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        });
    }
    Ok(data)
}

/// The modules of a cache entry by module name, and its built-in ones.
struct ModuleTree {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: Vec<String>,
}

impl ModuleTree {
    fn read(dir: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        collect(dir, &mut files)?;
        // modules.builtin: one kernel/.../NAME.ko per line.
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(module_name)
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            builtin,
        })
    }
}

/// Module names use `_` where file names may use `-`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a file name or path ending in `.ko` and one of
/// [`COMPRESSIONS`], or `None`.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    COMPRESSIONS
        .iter()
        .find_map(|c| file.strip_suffix(&format!(".ko{c}")))
        .map(normalize)
}

fn collect(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("cannot read", dir))? {
        let path = entry.map_err(io_err("cannot read", dir))?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if let Some(name) = path.to_str().and_then(module_name) {
            files.entry(name).or_insert(path);
        }
    }
    Ok(())
}

fn visit(
    tree: &ModuleTree,
    name: &str,
    depth: u32,
    order: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let name = normalize(name);
    if order.iter().any(|(n, _)| *n == name) || tree.builtin.contains(&name) {
        return Ok(());
    }
    let path = tree.files.get(&name).ok_or_else(|| HarnessError::Io {
        what: "no such module in the kernel cache (scripts/setup)",
        path: tree.dir.join(format!("{name}.ko")),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let info = modinfo(path)?;
    if depth < 16 {
        for deps in info
            .iter()
            .filter_map(|(k, v)| (k == "depends").then_some(v))
        {
            for dep in deps.split(',').filter(|d| !d.is_empty()) {
                visit(tree, dep, depth + 1, order)?;
            }
        }
        // Soft dependencies ("pre: crc32c") name what the module needs at
        // init but does not link against; crypto ones name an algorithm,
        // whose portable implementation is the module NAME_generic.
        for soft in info
            .iter()
            .filter_map(|(k, v)| (k == "softdep").then_some(v))
        {
            let Some(pre) = soft.trim().strip_prefix("pre:") else {
                continue;
            };
            for dep in pre.split_whitespace() {
                if let Some(module) = softdep_module(&tree.files, dep) {
                    visit(tree, &module, depth + 1, order)?;
                }
            }
        }
    }
    order.push((name, path.clone()));
    Ok(())
}

/// The module file of a soft dependency `dep`: the module of that name, or
/// for an algorithm of the crypto API (`crc32c`, or its module alias
/// `crypto-crc32c` as ext4 and jbd2 name it) its portable implementation
/// `NAME_generic`; `None` when the tree has neither (built in, or a
/// driver-specific one).
fn softdep_module(files: &BTreeMap<String, PathBuf>, dep: &str) -> Option<String> {
    let dep = normalize(dep);
    let algorithm = dep.strip_prefix("crypto_").unwrap_or(&dep);
    [
        dep.clone(),
        algorithm.to_string(),
        format!("{algorithm}_generic"),
    ]
    .into_iter()
    .find(|m| files.contains_key(m))
}

/// The `key=value` entries of a module's `.modinfo` section.
fn modinfo(path: &Path) -> Result<Vec<(String, String)>> {
    let data = module_bytes(path)?;
    let file = object::File::parse(&*data).map_err(|source| HarnessError::Object {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(section) = file.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let bytes = section.data().map_err(|source| HarnessError::Object {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = std::str::from_utf8(entry).ok()?;
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_dependencies_name_modules_or_crypto_algorithms() {
        let files: BTreeMap<String, PathBuf> = ["crc32c_generic", "crc32c_intel", "libcrc32c"]
            .into_iter()
            .map(|m| (m.to_string(), PathBuf::from(format!("{m}.ko"))))
            .collect();
        let found = |dep: &str| softdep_module(&files, dep);
        assert_eq!(found("crypto-crc32c").as_deref(), Some("crc32c_generic"));
        assert_eq!(found("crc32c").as_deref(), Some("crc32c_generic"));
        assert_eq!(found("crc32c-intel").as_deref(), Some("crc32c_intel"));
        assert_eq!(found("libcrc32c").as_deref(), Some("libcrc32c"));
        assert_eq!(found("crypto-sha256"), None);
    }

    #[test]
    fn module_names_come_from_plain_and_compressed_files() {
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko"), Some("ext4".into()));
        assert_eq!(
            module_name("/c/kernel/crypto/crc32c-intel.ko.xz"),
            Some("crc32c_intel".into())
        );
        assert_eq!(
            module_name("a/virtio_blk.ko.zst"),
            Some("virtio_blk".into())
        );
        assert_eq!(module_name("modules.order"), None);
        assert_eq!(module_name("x.ko.gz"), None);
    }
}
