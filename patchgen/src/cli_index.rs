//! `patchgen index DIR`: writes the repository index (`DIR/index.json`,
//! the format patchd's daemon reads, `suture_bundle::repository_index`)
//! for the bundle files of a repository directory, so that publishing is
//! copying signed bundles into a directory and running one command.
//!
//! Every bundle must be signed by one of the given keys: an index only
//! lists what its publisher signed (patchd verifies again on apply; the
//! index itself is not trusted). The file is written atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use sha2::Digest;
use suture_bundle::repository_index::{
    Index, IndexEntry, IndexTarget, BUNDLE_SUFFIX, INDEX_FILE, INDEX_VERSION,
};

/// Arguments of `patchgen index`.
#[derive(clap::Args)]
pub struct IndexArgs {
    /// The repository directory: every `*.bundle` in it is listed in
    /// DIR/index.json (replaced).
    pub dir: PathBuf,
    /// A public key the bundles must be signed with (repeatable).
    #[arg(long = "key", value_name = "NAME.pub", required = true)]
    pub keys: Vec<PathBuf>,
}

/// Runs `patchgen index`.
pub fn run(args: &IndexArgs) -> anyhow::Result<ExitCode> {
    let keys = args
        .keys
        .iter()
        .map(|k| {
            suture_bundle::read_verifying_key(k)
                .with_context(|| format!("cannot use {} as a public key", k.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let index = index_of(&args.dir, &keys)?;
    let mut text = serde_json::to_vec_pretty(&index)?;
    text.push(b'\n');
    // What the daemon reads must parse as it reads it.
    Index::parse(&text).context("internal: the index written does not parse")?;
    write_atomically(&args.dir, &text)?;
    eprintln!(
        "patchgen: wrote {} ({} bundles)",
        args.dir.join(INDEX_FILE).display(),
        index.bundles.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The index of the bundle files of `dir`, each verified with `keys`.
fn index_of(dir: &Path, keys: &[suture_bundle::VerifyingKey]) -> anyhow::Result<Index> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.ends_with(BUNDLE_SUFFIX) && !n.starts_with('.'))
        .collect();
    names.sort();
    let mut bundles = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let bytes = suture_bundle::read_file(&path)?;
        let unverified = suture_bundle::parse(&bytes)
            .with_context(|| format!("{} is not a valid bundle", path.display()))?;
        let verified = unverified.verify(keys).with_context(|| {
            format!(
                "{} is not signed by a key given with --key: only signed bundles are published",
                path.display()
            )
        })?;
        let manifest = verified.manifest();
        if manifest.target.kernel_release.len() > 64 {
            bail!(
                "{}: its kernel release is too long for the index",
                path.display()
            );
        }
        bundles.push(IndexEntry {
            name,
            sha256: hex(&sha2::Sha256::digest(&bytes)),
            size: u64::try_from(bytes.len())?,
            target: IndexTarget {
                kernel_release: manifest.target.kernel_release.clone(),
                build_id: manifest.target.build_id.clone(),
                package_version: manifest.target.package_version.clone(),
            },
            cves: manifest.cves.clone(),
        });
    }
    Ok(Index {
        version: INDEX_VERSION,
        bundles,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `dir/index.json` through a temporary file and a rename.
fn write_atomically(dir: &Path, text: &[u8]) -> anyhow::Result<()> {
    let temp = dir.join(format!(".{INDEX_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
    let path = dir.join(INDEX_FILE);
    std::fs::rename(&temp, &path).with_context(|| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot replace {}", path.display())
    })
}
