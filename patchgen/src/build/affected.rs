//! Which objects a fix affects, from kbuild's own record of the target
//! (see `kbuild`): a changed `.c` file's object and the objects that
//! `#include` it, a changed header's readers.

use std::path::PathBuf;

use super::{kbuild, source, BuildError, BuildRequest, DEFAULT_MAX_OBJECTS};

/// The objects a fix affects, as (object, source) named as kbuild names
/// them, from kbuild's own record of the target (see `kbuild`): a changed
/// `.c` file's object, or the objects that `#include` it; a changed
/// header's readers.
pub(super) fn affected_objects(
    req: &BuildRequest,
    fix: &source::AppliedFix,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(PathBuf, PathBuf)>, BuildError> {
    let record = kbuild::Record::load(&req.target, progress)?;
    let mut deps = None;
    let mut objects = Vec::new();
    let limit = req.max_objects.unwrap_or(DEFAULT_MAX_OBJECTS);
    for touched in source::classify(&fix.files)? {
        let file = match touched {
            source::Touched::Source(file) | source::Touched::Header(file) => file,
            source::Touched::Ignored(f) => {
                progress(&format!(
                    "ignoring {} (not part of the kernel image)",
                    f.display()
                ));
                continue;
            }
        };
        let compiled = record.compiled_from(&file);
        if !compiled.is_empty() {
            objects.extend(
                compiled
                    .iter()
                    .map(|b| (b.object.clone(), b.source.clone())),
            );
            // A C file compiled on its own may also be #included by another
            // (fs/compat_binfmt_elf.c includes binfmt_elf.c): that object
            // runs the same code and needs the same fix.
            let includers = match record.deps_if_made()? {
                Some(d) => d.objects_reading(&file),
                None => record.includers_of(&req.target, &file),
            };
            for b in includers.iter().filter_map(|&i| record.objects.get(i)) {
                if compiled.iter().any(|c| c.object == b.object) {
                    continue;
                }
                progress(&format!(
                    "{} is also #included by {}: compiling that too",
                    file.display(),
                    b.source_path().display()
                ));
                objects.push((b.object.clone(), b.source.clone()));
            }
            continue;
        }
        let deps = match &mut deps {
            Some(deps) => deps,
            None => deps.insert(record.deps(&req.target, progress)?),
        };
        let readers: Vec<&kbuild::Built> = deps
            .objects_reading(&file)
            .into_iter()
            .filter_map(|i| record.objects.get(i))
            .collect();
        if readers.is_empty() {
            if file.extension().is_some_and(|e| e == "c") {
                return Err(BuildError::OutsideBuild {
                    file,
                    release: req.target.release.clone(),
                });
            }
            progress(&format!(
                "no object of the target reads {}: nothing to compile for it",
                file.display()
            ));
            continue;
        }
        if readers.len() > limit {
            let examples: Vec<String> = readers
                .iter()
                .take(3)
                .map(|b| b.object.display().to_string())
                .collect();
            return Err(BuildError::TooManyObjects {
                header: file,
                count: readers.len(),
                limit,
                examples: examples.join(", "),
            });
        }
        progress(&format!(
            "{} is read by {} object(s) of the target: {}",
            file.display(),
            readers.len(),
            readers
                .iter()
                .map(|b| kbuild::normalize(&b.object).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        objects.extend(readers.iter().map(|b| (b.object.clone(), b.source.clone())));
    }
    objects.sort();
    objects.dedup();
    Ok(objects)
}
