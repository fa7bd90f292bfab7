//! FastHasher: FxHash's mixing for the check's maps, which are keyed by
//! DIE offsets and names and probed some hundred thousand times per kernel
//! object. SipHash's defence against chosen keys buys nothing here (an
//! object built to collide slows down the diff of that object) and costs a
//! good part of the check's time.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's mixing.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A map with [`FastHasher`].
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A set with [`FastHasher`].
pub(super) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// "None" in a field that holds a [`narrow`]ed offset or position.
pub(super) const NONE: u32 = u32::MAX;

/// A `.debug_info` offset, or a position in a table of things read from
/// it, in the 32 bits the check's tables keep. `.debug_info` is smaller
/// than 4 GiB (checked when the sections are found), so every offset in it
/// and every count of DIEs fits; anything else becomes [`NONE`], which
/// names no DIE.
pub(super) fn narrow(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(NONE)
}

/// A [`narrow`]ed offset or position, back.
pub(super) fn wide(n: u32) -> usize {
    n as usize
}
