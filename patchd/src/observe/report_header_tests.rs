//! The header, the window and the host column.

use super::*;

#[test]
fn a_window_holds_the_lines_of_its_times() {
    let window = Window {
        since: Some(1_700_000_000),
        until: Some(1_700_000_600),
    };
    assert!(window.holds("2023-11-14T22:13:20Z"));
    assert!(window.holds("2023-11-14T22:23:20Z"));
    assert!(!window.holds("2023-11-14T22:13:19Z"));
    assert!(!window.holds("2023-11-14T22:23:21Z"));
    // A line whose time cannot be read is in an unbounded window only.
    assert!(!window.holds("yesterday"));
    assert!(Window::default().holds("yesterday"));
}
