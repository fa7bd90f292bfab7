//! Declared lengths are checked before anything is allocated for them: a
//! hostile header that declares a 1 MiB manifest or a 64 MiB module in a
//! file of a few hundred bytes must not make the parser allocate that much.
//!
//! A counting allocator records the largest single allocation made by the
//! current thread while a flag is set. This is the one place in the crate's
//! tests with unsafe code: implementing `GlobalAlloc` needs it, and each
//! method only forwards to the system allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{key, Raw};
use suture_bundle::{parse, MAX_MANIFEST_SIZE, MAX_PART_SIZE};

struct Counting;

thread_local! {
    // `const` and no destructor: reading them never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; `note` does not
// allocate (const thread-locals of `Cell`s without destructors).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which
        // is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every
        // allocation goes through `alloc`/`realloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by
        // the caller against `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    LARGEST.with(Cell::get)
}

#[test]
fn declared_lengths_allocate_nothing_of_their_size() {
    // The counter counts.
    let seen = largest_allocation(|| drop(std::hint::black_box(vec![1u8; 10_000])));
    assert!(seen >= 10_000, "the counting allocator saw {seen}");

    let mut huge_module = Raw::example();
    huge_module.parts[0].1 = Some(u64::try_from(MAX_PART_SIZE).expect("fits"));
    let mut huge_manifest = Raw::example();
    huge_manifest.manifest_len = Some(u32::try_from(MAX_MANIFEST_SIZE).expect("fits"));
    let mut many_parts = Raw::example();
    many_parts.part_count = Some(u32::MAX);
    for (what, raw) in [
        ("64 MiB module", huge_module),
        ("1 MiB manifest", huge_manifest),
        ("4 G parts", many_parts),
    ] {
        let bytes = raw.write(&key());
        let largest = largest_allocation(|| {
            assert!(parse(&bytes).is_err(), "{what}: accepted");
        });
        assert!(
            largest < 4096,
            "{what}: parsing allocated {largest} bytes at once"
        );
    }
}
