//! Man pages and shell completions of suture's commands, made from the
//! clap definitions that parse their command lines, so the installed
//! documentation cannot drift from the program (`scripts/package` puts them
//! into the Debian packages).
//!
//! Each binary hands its `clap::Command` to [`generate_if_asked`] first
//! thing in `main`: `patchd --generate man|bash|zsh|fish OUTDIR` writes the
//! files and exits. The flag is read before clap parses, so it is not part
//! of the command line the pages and completions describe. It only writes
//! into the directory it is given; it never reads or changes anything else.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Command;
use clap_complete::Shell;

/// The first argument that asks a binary for its pages or completions.
pub const GENERATE_FLAG: &str = "--generate";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One man page per command and subcommand: `patchd.8`,
    /// `patchd-apply.8`, ...
    Man,
    /// A completion script for a shell, named as the shell's loader expects
    /// (`patchd.bash`, `_patchd`, `patchd.fish`).
    Completion(Shell),
}

impl Output {
    /// `man`, `bash`, `zsh` or `fish`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "man" => Some(Self::Man),
            "bash" => Some(Self::Completion(Shell::Bash)),
            "zsh" => Some(Self::Completion(Shell::Zsh)),
            "fish" => Some(Self::Completion(Shell::Fish)),
            _ => None,
        }
    }
}

/// Writes `output` for `cmd` into `dir` (which must exist) and returns the
/// files written. Man pages get `section` (`1` for user commands, `8` for
/// patchd); hidden subcommands get no page.
pub fn generate(
    cmd: Command,
    section: &str,
    output: Output,
    dir: &Path,
) -> io::Result<Vec<PathBuf>> {
    match output {
        Output::Man => {
            let mut cmd = cmd.disable_help_subcommand(true);
            cmd.build();
            let mut written = Vec::new();
            // Subcommands have no version of their own: every page's footer
            // names the binary's.
            let source = format!("suture {}", cmd.get_version().unwrap_or_default());
            man_pages(&cmd, section, &source, dir, &mut written)?;
            Ok(written)
        }
        Output::Completion(shell) => {
            let mut cmd = cmd;
            let name = cmd.get_name().to_string();
            let path = clap_complete::generate_to(shell, &mut cmd, name, dir)?;
            Ok(vec![path])
        }
    }
}

/// The page of `cmd` and, depth first, of each visible subcommand.
fn man_pages(
    cmd: &Command,
    section: &str,
    source: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .source(source.to_owned())
        .manual("suture");
    written.push(page.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, section, source, dir, written)?;
    }
    Ok(())
}

/// If the command line is `BIN --generate WHAT OUTDIR`, writes `WHAT` for
/// the command `cmd` makes into `OUTDIR` and returns the exit code (0, 1 if
/// a file could not be written, 2 for a wrong request); otherwise `None`,
/// and the binary parses its command line as usual.
pub fn generate_if_asked(cmd: impl FnOnce() -> Command, section: &str) -> Option<ExitCode> {
    generate_for_args(std::env::args_os().collect(), cmd, section)
}

/// [`generate_if_asked`] for the arguments `args` (the program name
/// first).
fn generate_for_args(
    args: Vec<OsString>,
    cmd: impl FnOnce() -> Command,
    section: &str,
) -> Option<ExitCode> {
    if args.get(1).is_none_or(|a| a != GENERATE_FLAG) {
        return None;
    }
    let output = args.get(2).and_then(|a| a.to_str()).and_then(Output::parse);
    let (Some(output), Some(dir), 4) = (output, args.get(3), args.len()) else {
        eprintln!("usage: {GENERATE_FLAG} man|bash|zsh|fish OUTDIR");
        return Some(ExitCode::from(2));
    };
    match generate(cmd(), section, output, Path::new(dir)) {
        Ok(_) => Some(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!(
                "error: cannot write into {}: {err}",
                Path::new(dir).display()
            );
            Some(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn sample() -> Command {
        Command::new("patchd")
            .version("0.1.0")
            .about("applies live patches")
            .subcommand(
                Command::new("apply")
                    .about("apply bundles")
                    .arg(Arg::new("keys").long("keys").action(ArgAction::Set)),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn man_pages_cover_every_visible_subcommand_in_the_section_given() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut written = generate(sample(), "8", Output::Man, dir.path()).expect("pages");
        written.sort();
        let names: Vec<_> = written
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["patchd-apply.8", "patchd.8"]);
        let page = std::fs::read_to_string(dir.path().join("patchd-apply.8")).expect("page");
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains(".TH patchd-apply 8"), "{page}");
        assert!(
            page.contains("suture 0.1.0"),
            "the footer names the version: {page}"
        );
        assert!(page.contains("\\-\\-keys"), "{page}");
    }

    #[test]
    fn completions_are_named_as_each_shell_loads_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (shell, name) in [
            ("bash", "patchd.bash"),
            ("zsh", "_patchd"),
            ("fish", "patchd.fish"),
        ] {
            let output = Output::parse(shell).expect("a shell");
            let written = generate(sample(), "8", output, dir.path()).expect("completion");
            assert_eq!(written, [dir.path().join(name)]);
        }
        let fish = std::fs::read_to_string(dir.path().join("patchd.fish")).expect("fish");
        assert!(fish.contains("apply"), "{fish}");
    }

    #[test]
    fn other_command_lines_are_left_to_the_binary() {
        assert!(generate_for_args(args(&["patchd", "status"]), sample, "8").is_none());
        assert!(generate_for_args(args(&["patchd"]), sample, "8").is_none());
    }

    #[test]
    fn a_wrong_request_is_a_usage_error_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().to_string_lossy().into_owned();
        for bad in [
            args(&["patchd", "--generate", "html", &out]),
            args(&["patchd", "--generate", "man"]),
            args(&["patchd", "--generate", "man", &out, "extra"]),
        ] {
            let code = generate_for_args(bad, sample, "8").expect("handled");
            assert_eq!(code, ExitCode::from(2));
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
