//! The verdict and its monitoring code.

use super::*;

#[test]
fn everything_in_effect_is_ok() {
    let v = verdict(&Facts::default());
    assert_eq!(
        (v.level, v.summary.as_str()),
        (Level::Ok, "no bundle applied")
    );
    let v = verdict(&Facts {
        in_effect: 2,
        ..Facts::default()
    });
    assert_eq!(v.level.exit_code(), 0);
    assert_eq!(v.to_string(), "OK: 2 bundles applied and in effect");
}

#[test]
fn a_fix_not_in_effect_is_critical() {
    for facts in [
        Facts {
            held: 1,
            in_effect: 1,
            ..Facts::default()
        },
        Facts {
            not_in_effect: 1,
            in_effect: 1,
            pending: 3,
            ..Facts::default()
        },
    ] {
        let v = verdict(&facts);
        assert_eq!(v.level, Level::Critical, "{v}");
        assert_eq!(v.level.exit_code(), 2);
        assert!(v.summary.ends_with("; 1 bundle in effect"), "{v}");
    }
}

#[test]
fn something_waiting_is_a_warning() {
    for (facts, says) in [
        (
            Facts {
                pending: 1,
                ..Facts::default()
            },
            "1 bundle in the watch directory not applied",
        ),
        (
            Facts {
                cut_short: 2,
                ..Facts::default()
            },
            "2 bundles with an apply or revert cut short",
        ),
        (
            Facts {
                poll_failed: true,
                ..Facts::default()
            },
            "the last repository poll failed",
        ),
    ] {
        let v = verdict(&facts);
        assert_eq!(v.level, Level::Warning, "{v}");
        assert_eq!(v.level.exit_code(), 1);
        assert!(
            v.to_string().starts_with(&format!("WARNING: {says}")),
            "{v}"
        );
    }
}
