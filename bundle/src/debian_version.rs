//! Ordering Debian package versions (`[epoch:]upstream[-revision]`) as
//! dpkg does (Debian Policy 5.6.12): patchd compares the kernel version a
//! bundle's fixes correspond to with the running kernel's and with other
//! bundles'.
//!
//! Written here rather than taken from a crate: the algorithm is a few
//! lines of the policy, and the crates that implement it bring a regex
//! engine and a date library into the root daemon.

use std::cmp::Ordering;

/// Compares two Debian versions. Versions that are not well formed still
/// get a total order (by the same rules on their text).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (epoch_a, upstream_a, revision_a) = split(a);
    let (epoch_b, upstream_b, revision_b) = split(b);
    epoch_a
        .cmp(&epoch_b)
        .then_with(|| compare_part(upstream_a, upstream_b))
        .then_with(|| compare_part(revision_a, revision_b))
}

/// (epoch, upstream version, revision).
fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs; non-digits
/// compare by [`order`], digit runs numerically.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        let (text_a, rest_a) = split_run(a, |c| !c.is_ascii_digit());
        let (text_b, rest_b) = split_run(b, |c| !c.is_ascii_digit());
        let by_text = compare_text(text_a, text_b);
        if by_text != Ordering::Equal {
            return by_text;
        }
        let (digits_a, rest_a) = split_run(rest_a, |c| c.is_ascii_digit());
        let (digits_b, rest_b) = split_run(rest_b, |c| c.is_ascii_digit());
        let by_number = compare_digits(digits_a, digits_b);
        if by_number != Ordering::Equal {
            return by_number;
        }
        (a, b) = (rest_a, rest_b);
    }
    Ordering::Equal
}

fn split_run(s: &[u8], keep: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|&&c| keep(c)).count();
    s.split_at(n)
}

/// The weight of a character in a non-digit run: `~` sorts before
/// everything, even the end of the run; letters before other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    let len = a.len().max(b.len());
    for i in 0..len {
        let by_char = order(a.get(i).copied()).cmp(&order(b.get(i).copied()));
        if by_char != Ordering::Equal {
            return by_char;
        }
    }
    Ordering::Equal
}

fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pair: the first sorts before the second (as
    /// `dpkg --compare-versions A lt B`).
    #[test]
    fn orders_versions_as_dpkg() {
        for (lower, higher) in [
            ("6.1.176-1", "6.1.187-1"),
            ("6.1.187-1", "6.1.190-1"),
            ("6.1.192-1", "6.1.192-2"),
            ("6.1.9-1", "6.1.10-1"),
            ("6.12.107-1", "6.12.115-2"),
            ("6.1.190-1", "6.12.107-1"),
            ("1.0~rc1-1", "1.0-1"),
            ("1.0-1", "1.0-1+deb12u1"),
            ("1.0-1~bpo12+1", "1.0-1"),
            ("1.0", "1.0-1"),
            ("1.0a", "1.0b"),
            ("1.0a", "1.0+"),
            ("9:1.0", "10:0.1"),
            ("2.0", "1:1.0"),
            ("1.01", "1.2"),
        ] {
            assert_eq!(compare(lower, higher), Ordering::Less, "{lower} < {higher}");
            assert_eq!(
                compare(higher, lower),
                Ordering::Greater,
                "{higher} > {lower}"
            );
        }
        for (a, b) in [("1.0-1", "1.0-1"), ("1.001", "1.1"), ("0:1.0", "1.0")] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} = {b}");
        }
    }
}
