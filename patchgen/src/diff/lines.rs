//! `__LINE__` churn: a fix that adds or removes lines moves the line numbers
//! that later code passes as immediate operands (`__ext4_error(sb, __func__,
//! __LINE__, ...)`, `__might_sleep(__FILE__, __LINE__)`). Such a function did
//! not change. Given the fix's hunks for the object's source file, a byte
//! difference is line churn when it lies in an immediate whose original
//! value is a line number that the hunks move to exactly the fixed value.

/// How the fix moves the lines of one source file.
#[derive(Debug, Clone, Default)]
pub struct LineMap {
    /// (old start, old lines, new start, new lines, body) of each hunk.
    hunks: Vec<Hunk>,
}

#[derive(Debug, Clone)]
struct Hunk {
    old_start: u64,
    new_start: u64,
    /// ' ', '-', '+' per hunk line.
    ops: Vec<u8>,
}

impl LineMap {
    /// The hunks of `file` (a path relative to the tree) in a -p1 unified
    /// diff.
    pub fn from_patch(patch: &str, file: &str) -> Self {
        let mut hunks = Vec::new();
        let mut in_file = false;
        let mut current: Option<Hunk> = None;
        for line in patch.lines() {
            if let Some(rest) = line.strip_prefix("+++ ") {
                if let Some(h) = current.take() {
                    hunks.push(h);
                }
                let path = rest.split('\t').next().unwrap_or("").trim();
                in_file = path.split_once('/').is_some_and(|(_, p)| p == file);
                continue;
            }
            if !in_file || line.starts_with("--- ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("@@ ") {
                if let Some(h) = current.take() {
                    hunks.push(h);
                }
                // @@ -a,b +c,d @@
                let mut it = rest.split_whitespace();
                let start = |s: Option<&str>| {
                    s.and_then(|s| s[1..].split(',').next().and_then(|n| n.parse::<u64>().ok()))
                };
                if let (Some(o), Some(n)) = (start(it.next()), start(it.next())) {
                    current = Some(Hunk {
                        old_start: o,
                        new_start: n,
                        ops: Vec::new(),
                    });
                }
                continue;
            }
            if let Some(h) = current.as_mut() {
                match line.as_bytes().first() {
                    Some(b' ') | None => h.ops.push(b' '),
                    Some(b'-') => h.ops.push(b'-'),
                    Some(b'+') => h.ops.push(b'+'),
                    _ => {}
                }
            }
        }
        if let Some(h) = current.take() {
            hunks.push(h);
        }
        Self { hunks }
    }

    /// Whether the map knows any hunk.
    pub fn is_empty(&self) -> bool {
        self.hunks.is_empty()
    }

    /// Where original line `old` is in the fixed file; `None` when the fix
    /// removed it.
    pub fn map(&self, old: u64) -> Option<u64> {
        let mut delta: i64 = 0;
        for h in &self.hunks {
            if old < h.old_start {
                break;
            }
            let (mut o, mut n) = (h.old_start, h.new_start);
            let mut inside = false;
            for &op in &h.ops {
                match op {
                    b' ' => {
                        if o == old {
                            return Some(n);
                        }
                        o += 1;
                        n += 1;
                    }
                    b'-' => {
                        if o == old {
                            return None;
                        }
                        o += 1;
                    }
                    _ => n += 1,
                }
                inside = true;
            }
            if inside && old < o {
                return None;
            }
            delta = i64::try_from(n).unwrap_or(0) - i64::try_from(o).unwrap_or(0);
        }
        u64::try_from(i64::try_from(old).ok()? + delta).ok()
    }
}

/// Whether every differing byte of two equally long code ranges lies in a
/// 4-byte little-endian immediate holding a line number that `map` moves to
/// the fixed value.
pub fn only_line_churn(orig: &[u8], fixed: &[u8], map: &LineMap) -> bool {
    if orig.len() != fixed.len() || map.is_empty() {
        return false;
    }
    let mut i = 0;
    let mut any = false;
    while i < orig.len() {
        if orig[i] == fixed[i] {
            i += 1;
            continue;
        }
        // An immediate starting at most 3 bytes before the first differing byte.
        let hit = (0..4)
            .filter_map(|back| i.checked_sub(back))
            .find(|&start| {
                let (Some(a), Some(b)) = (orig.get(start..start + 4), fixed.get(start..start + 4))
                else {
                    return false;
                };
                let va = u64::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]]));
                let vb = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                va != vb && (1..1_000_000).contains(&va) && map.map(va) == Some(vb)
            });
        match hit {
            Some(start) => {
                any = true;
                i = start + 4;
            }
            None => return false,
        }
    }
    any
}

/// Whether two string literals differ only in numbers that are line
/// numbers `map` moves to exactly the fixed value (`__stringify(__LINE__)`
/// in WARN and fortify messages: `"fs/x.c:30"` -> `"fs/x.c:32"`).
pub fn only_line_churn_in_string(orig: &[u8], fixed: &[u8], map: &LineMap) -> bool {
    if map.is_empty() || orig == fixed {
        return false;
    }
    let runs = |s: &[u8]| -> Vec<(bool, Vec<u8>)> {
        let mut out: Vec<(bool, Vec<u8>)> = Vec::new();
        for &b in s {
            let digit = b.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(b),
                _ => out.push((digit, vec![b])),
            }
        }
        out
    };
    let (a, b) = (runs(orig), runs(fixed));
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(&b).all(|((da, ra), (db, rb))| {
        if da != db {
            return false;
        }
        if ra == rb {
            return true;
        }
        if !*da || ra.len() > 7 || rb.len() > 7 {
            return false;
        }
        let num = |r: &[u8]| {
            std::str::from_utf8(r)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
        };
        match (num(ra), num(rb)) {
            (Some(x), Some(y)) => x > 0 && map.map(x) == Some(y),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "--- a/fs/x.c\n+++ b/fs/x.c\n@@ -10,3 +10,5 @@\n a\n+b\n+c\n d\n e\n@@ -50,3 +52,2 @@\n f\n-g\n h\n";

    #[test]
    fn maps_lines_through_hunks() {
        let m = LineMap::from_patch(PATCH, "fs/x.c");
        assert_eq!(m.map(5), Some(5));
        assert_eq!(m.map(10), Some(10));
        assert_eq!(m.map(11), Some(13));
        assert_eq!(m.map(30), Some(32));
        assert_eq!(m.map(51), None);
        assert_eq!(m.map(52), Some(53));
        assert_eq!(m.map(100), Some(101));
        assert!(LineMap::from_patch(PATCH, "fs/y.c").is_empty());
    }

    #[test]
    fn line_churn_only_in_moved_immediates() {
        let m = LineMap::from_patch(PATCH, "fs/x.c");
        // mov $30, %edx -> mov $32, %edx
        let a = [0x90, 0xba, 30, 0, 0, 0, 0xe8];
        let b = [0x90, 0xba, 32, 0, 0, 0, 0xe8];
        assert!(only_line_churn(&a, &b, &m));
        // 30 -> 33 is not where line 30 went.
        let c = [0x90, 0xba, 33, 0, 0, 0, 0xe8];
        assert!(!only_line_churn(&a, &c, &m));
        // Identical code is no churn; other differences are real.
        assert!(!only_line_churn(&a, &a, &m));
        assert!(!only_line_churn(&[1, 2, 3], &[1, 9, 3], &m));
    }

    #[test]
    fn line_churn_in_strings() {
        let m = LineMap::from_patch(PATCH, "fs/x.c");
        assert!(only_line_churn_in_string(
            b"fs/x.c:30 bad",
            b"fs/x.c:32 bad",
            &m
        ));
        assert!(only_line_churn_in_string(
            b"at 11 and 30",
            b"at 13 and 32",
            &m
        ));
        // Another number, another text, or a line the fix removed: a change.
        assert!(!only_line_churn_in_string(b"fs/x.c:30", b"fs/x.c:33", &m));
        assert!(!only_line_churn_in_string(
            b"fs/x.c:30 bad",
            b"fs/x.c:32 worse",
            &m
        ));
        assert!(!only_line_churn_in_string(b"line 51", b"line 52", &m));
        assert!(!only_line_churn_in_string(b"same 30", b"same 30", &m));
        assert!(!only_line_churn_in_string(
            b"fs/x.c:30",
            b"fs/x.c:32",
            &LineMap::default()
        ));
    }
}
