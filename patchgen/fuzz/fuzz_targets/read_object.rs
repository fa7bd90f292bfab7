//! Fuzzes the object reader and the differ on arbitrary bytes: reading must
//! return an error or a model, and diffing a model against itself must
//! finish, never panic. Run: `cd patchgen/fuzz && cargo fuzz run read_object`
//! (see docs/testing.md).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use patchgen::{diff, DiffOptions, ObjectFile};

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = ObjectFile::parse(Path::new("fuzz.o"), data) {
        let _ = diff(&obj, &obj, &DiffOptions::default());
    }
});
