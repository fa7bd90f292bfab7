//! `patchd release`: applies again, now, bundles the crash-loop guard held
//! back after a crash ([`super::crash_guard`]), each from its copy in the
//! state directory, verified again, through the same path as the boot
//! re-apply ([`super::apply::release`]). A bundle that fails stays held.
//! A release does not make a bundle a survivor: if the machine goes down
//! again before it proves itself, it is held again.

use super::apply::{self, ApplyError};
use super::session::Session;
use super::state::Phase;

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseTarget {
    /// These bundles.
    Ids(Vec<String>),
    /// Every held bundle.
    All,
}

/// What a release did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// The bundles applied again, in the order they were first applied.
    pub released: Vec<String>,
}

/// Why a release stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// An id patchd does not hold back.
    #[error("bundle {id} is {}: only a held bundle is released (`patchd status` lists them)", .phase.map_or("not recorded".to_owned(), |p| format!("recorded as {}", p.as_str())))]
    NotHeld {
        /// The id.
        id: String,
        /// Its phase, if it is recorded.
        phase: Option<Phase>,
    },

    /// Applying a held bundle again failed: it stays held.
    #[error("cannot release bundle {id}; it stays held{}", released_before(.released))]
    Failed {
        /// The bundle.
        id: String,
        /// The bundles released before it.
        released: Vec<String>,
        /// The cause.
        #[source]
        source: Box<ApplyError>,
    },
}

/// The bundles released before a failure, for its message.
fn released_before(released: &[String]) -> String {
    if released.is_empty() {
        String::new()
    } else {
        format!(" (released before it: {})", released.join(", "))
    }
}

/// Releases held bundles, in the order they were first applied (so
/// dependencies come first); stops at the first that cannot be applied.
pub fn release(
    session: &mut Session<'_>,
    target: &ReleaseTarget,
) -> Result<ReleaseReport, ReleaseError> {
    let held = |phase: Phase| phase == Phase::Held;
    if let ReleaseTarget::Ids(ids) = target {
        for id in ids {
            let phase = session.state.get(id).map(|record| record.phase);
            if !phase.is_some_and(held) {
                return Err(ReleaseError::NotHeld {
                    id: id.clone(),
                    phase,
                });
            }
        }
    }
    let selected: Vec<String> = session
        .state
        .bundles
        .iter()
        .filter(|record| held(record.phase))
        .filter(|record| match target {
            ReleaseTarget::All => true,
            ReleaseTarget::Ids(ids) => ids.contains(&record.id),
        })
        .map(|record| record.id.clone())
        .collect();
    let mut report = ReleaseReport::default();
    for id in selected {
        match apply::release(session, &id) {
            Ok(_) => report.released.push(id),
            Err(source) => {
                return Err(ReleaseError::Failed {
                    id,
                    released: report.released,
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(report)
}
