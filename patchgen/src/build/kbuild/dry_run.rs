//! kbuild's dry run (`make -n -k vmlinux modules`): the compile commands
//! it lists, and the objects they build.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;

use super::Built;
use crate::build::compile::TreeLock;
use crate::build::{BuildError, KernelTarget};

/// Added to every compile command of the dry run (and taken out again):
/// kbuild lists only the commands it would run, and it would not rerun an
/// object already built in the tree with the same command. A changed
/// command makes it list them all.
const DRY_RUN_MARK: &str = "-DSUTURE_KBUILD_DRY_RUN";

/// The objects kbuild compiles for `vmlinux modules`.
pub(super) fn dry_run(target: &KernelTarget) -> Result<Vec<Built>, BuildError> {
    Ok(compile_commands(&dry_run_output(target)?, &target.cc))
}

/// What kbuild's dry run of `vmlinux modules` prints: every command it
/// would run (the tree's shared lock held).
fn dry_run_output(target: &KernelTarget) -> Result<String, BuildError> {
    let _tree = TreeLock::take(target, false)?;
    let out = target
        .command("make")
        .args(["-n", "-k", "-C"])
        .arg(&target.source)
        .arg(format!("CC={}", target.cc))
        .arg(format!("KCFLAGS={DRY_RUN_MARK}"))
        .arg(format!("KAFLAGS={DRY_RUN_MARK}"))
        .args(["vmlinux", "modules"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Io {
            what: "cannot run make in",
            path: target.source.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // In a dry run nothing is built, so the final link's inputs are
    // missing (`vmlinux.a` on 6.12): that error (and only that) is
    // expected, with the `[target] Error 2` lines each make level above
    // it prints.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("***") && !l.contains("vmlinux") && !is_propagated(l))
        .collect();
    if compile_commands(&stdout, &target.cc).is_empty() || !unexpected.is_empty() {
        return Err(BuildError::KbuildDryRun {
            tree: target.source.clone(),
            output: if unexpected.is_empty() {
                stderr.into_owned()
            } else {
                unexpected.join("\n")
            },
        });
    }
    Ok(stdout)
}

/// `make[1]: *** [Makefile:236: __sub-make] Error 2`: a make level
/// reporting that the level below it failed, not a cause of its own.
fn is_propagated(line: &str) -> bool {
    let Some((_, after)) = line.split_once("*** [") else {
        return false;
    };
    after
        .rsplit_once("] Error ")
        .is_some_and(|(_, code)| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
}

/// The objects of the compile commands (`CC ... -c -o OBJ SRC`) in a dry
/// run's output, each once, in order.
pub fn compile_commands(output: &str, cc: &str) -> Vec<Built> {
    let mut seen = BTreeSet::new();
    let mut objects = Vec::new();
    for command in output.lines().flat_map(|l| l.split(';')) {
        let words: Vec<&str> = command.split_ascii_whitespace().collect();
        if words.first() != Some(&cc) || !words.contains(&"-D__KERNEL__") {
            continue;
        }
        let [.., c, o, object, source] = words.as_slice() else {
            continue;
        };
        if *c != "-c" || *o != "-o" || !object.ends_with(".o") {
            continue;
        }
        if seen.insert((*object).to_string()) {
            objects.push(Built {
                object: PathBuf::from(object),
                source: PathBuf::from(source),
                module: words.contains(&"-DMODULE"),
            });
        }
    }
    objects
}

/// The compile command of each object, from the dry run's output again
/// (kept out of the record: 3 KB each).
pub(super) fn commands_of(
    target: &KernelTarget,
    objects: &[Built],
) -> Result<Vec<(PathBuf, String)>, BuildError> {
    let stdout = dry_run_output(target)?;
    let mut by_object: HashMap<&str, &str> = HashMap::new();
    for command in stdout.lines().flat_map(|l| l.split(';')) {
        let command = command.trim();
        if !command.starts_with(&format!("{} ", target.cc)) {
            continue;
        }
        let words: Vec<&str> = command.split_ascii_whitespace().collect();
        if let [.., "-c", "-o", object, _] = words.as_slice() {
            by_object.entry(object).or_insert(command);
        }
    }
    objects
        .iter()
        .map(|b| {
            let key = b.object.to_string_lossy();
            by_object
                .get(key.as_ref())
                .map(|c| {
                    let command: Vec<&str> = c
                        .split_ascii_whitespace()
                        .filter(|w| *w != DRY_RUN_MARK)
                        .collect();
                    (b.object.clone(), command.join(" "))
                })
                .ok_or_else(|| BuildError::KbuildDryRun {
                    tree: target.source.clone(),
                    output: format!("a second dry run did not list {key}"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_of_the_level_below_is_not_a_cause() {
        assert!(is_propagated(
            "make: *** [Makefile:236: __sub-make] Error 2"
        ));
        assert!(is_propagated(
            "make[1]: *** [/src/Makefile:1185: vmlinux_o] Error 2"
        ));
        assert!(!is_propagated(
            "make[2]: *** No rule to make target 'vmlinux.a', needed by 'vmlinux.o'."
        ));
        assert!(!is_propagated(
            "make[3]: *** [scripts/Makefile.build:244: fs/x.o] Error"
        ));
    }

    #[test]
    fn lists_kernel_compiles_once_and_tells_modules_apart() {
        let out = "set -e;  echo '  CC      net/ipv4/tcp.o';  gcc-12 -Wp,-MMD,net/ipv4/.tcp.o.d -nostdinc -D__KERNEL__ -O2 -c -o net/ipv4/tcp.o net/ipv4/tcp.c  ; ./tools/objtool/objtool --orc net/ipv4/tcp.o\n\
            gcc-12 -D__KERNEL__ -DMODULE -DKBUILD_MODNAME='\"kvm\"' -c -o arch/x86/kvm/../../../virt/kvm/kvm_main.o arch/x86/kvm/../../../virt/kvm/kvm_main.c\n\
            gcc -Wp,-MMD,scripts/mod/.modpost.o.d -O2 -c -o scripts/mod/modpost.o scripts/mod/modpost.c\n\
            gcc-12 -D__KERNEL__ -c -o net/ipv4/tcp.o net/ipv4/tcp.c\n\
            gcc-12 -D__KERNEL__ -E -o x.lds x.lds.S\n";
        let objects = compile_commands(out, "gcc-12");
        assert_eq!(
            objects,
            vec![
                Built {
                    object: "net/ipv4/tcp.o".into(),
                    source: "net/ipv4/tcp.c".into(),
                    module: false,
                },
                Built {
                    object: "arch/x86/kvm/../../../virt/kvm/kvm_main.o".into(),
                    source: "arch/x86/kvm/../../../virt/kvm/kvm_main.c".into(),
                    module: true,
                },
            ]
        );
        assert_eq!(
            objects[1].source_path(),
            PathBuf::from("virt/kvm/kvm_main.c")
        );
    }
}
