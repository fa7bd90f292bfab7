//! `patchgen keygen`, `sign`, `inspect` and `verify`: the command-line side
//! (arguments, what is printed where); the work is `patchgen::keys`.
//! Data (the key id, the dump, the verdict) goes to stdout, notes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use patchgen::keys;

/// Arguments of `patchgen keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Writes NAME.key (secret, mode 0600) and NAME.pub; refuses to
    /// overwrite either.
    #[arg(short, long, value_name = "NAME")]
    pub output: PathBuf,
}

/// Arguments of `patchgen sign`.
#[derive(clap::Args)]
pub struct SignArgs {
    /// The bundle to re-sign (its digests are checked first).
    pub bundle: PathBuf,
    /// The secret key file (NAME.key from `patchgen keygen`).
    #[arg(long, value_name = "NAME.key")]
    pub key: PathBuf,
    /// Where to write the signed bundle (default: replace BUNDLE).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `patchgen inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// Also verify the signature against this public key (repeatable);
    /// without it the signature is NOT verified.
    #[arg(long = "key", value_name = "NAME.pub")]
    pub keys: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `patchgen verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// A trusted public key (repeatable): the bundle must be signed by one.
    #[arg(long = "key", value_name = "NAME.pub", required = true)]
    pub keys: Vec<PathBuf>,
}

/// `patchgen keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let files = keys::keygen(&args.output)?;
    println!("{}", files.key_id);
    eprintln!(
        "patchgen: wrote {} (secret: keep it private) and {} (public: give it to the servers), key id {}",
        files.secret.display(),
        files.public.display(),
        files.key_id
    );
    Ok(ExitCode::SUCCESS)
}

/// `patchgen sign`.
pub fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let output = args.output.as_ref().unwrap_or(&args.bundle);
    let resigned = keys::sign(&args.bundle, &args.key, output)?;
    eprintln!(
        "patchgen: signed {} with key {} (it was signed by key {})",
        output.display(),
        resigned.key_id,
        resigned.previous_key_id
    );
    Ok(ExitCode::SUCCESS)
}

/// `patchgen inspect`.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let text = keys::inspect(&args.bundle, &args.keys, args.json)?;
    print!("{text}");
    if args.keys.is_empty() {
        eprintln!(
            "patchgen: the signature was NOT verified: pass --key NAME.pub to check who signed it"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `patchgen verify`.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let v = keys::verify(&args.bundle, &args.keys)?;
    println!(
        "{}: good signature by trusted key {} ({}); patch {} for kernel {}",
        args.bundle.display(),
        v.key_id,
        v.key_path.display(),
        v.patch_id,
        v.kernel_release
    );
    Ok(ExitCode::SUCCESS)
}
