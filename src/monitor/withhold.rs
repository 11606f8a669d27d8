//! Whether a status change alerts now, is withheld, or releases an alert owed
//! from before: the deadline loop's one decision about alerts, a pure function
//! of the transition and what holds the heartbeat at that moment (a silence,
//! `super::silence`; a parent that is down, `super::dependency`).
//!
//! A down flip that is withheld is owed: the heartbeat keeps it
//! (`heartbeat.held_flip_id`), and the first evaluation at which nothing
//! withholds it any more, with the heartbeat still down, sends that one alert.
//! A recovery whose down alert never went out sends nothing either: one alert
//! per transition, and never an "up" for a "down" nobody was told about
//! (docs/monitoring.md, "Silences" and "Dependencies").

use chrono::{DateTime, Utc};

use super::status::StoredStatus;
use super::text_column::text_enum;

/// Why an alert was withheld (`heartbeat.flip.withheld`, `heartbeat.held_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Withheld {
    /// A silence covered the heartbeat.
    Silenced,
    /// One of its parents was down.
    Suppressed,
}

text_enum!(Withheld {
    Silenced => "silenced",
    Suppressed => "suppressed",
});

/// What holds a heartbeat at the moment of the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// The end of the silence covering it, if one does.
    pub silenced_until: Option<DateTime<Utc>>,
    /// One of its parents is down.
    pub parent_down: bool,
}

impl Holds {
    fn reason(&self) -> Option<Withheld> {
        if self.silenced_until.is_some() {
            Some(Withheld::Silenced)
        } else if self.parent_down {
            Some(Withheld::Suppressed)
        } else {
            None
        }
    }
}

/// The decision for one evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    /// The flip made now alerts (when its transition is one that alerts).
    pub alert: bool,
    /// The flip made now is recorded as withheld for this reason.
    pub withheld: Option<Withheld>,
    /// Send the owed down alert now.
    pub release: bool,
    /// Owe a down alert after this evaluation, held for this reason.
    pub owe: Option<Withheld>,
    /// Look again at this instant (a silence's end); a parent's recovery wakes
    /// its children itself.
    pub wake_at: Option<DateTime<Utc>>,
}

/// Decides for a heartbeat going `from` → `to` (equal: no flip), owing a down
/// alert already when `owed` is set.
pub fn decide(
    from: StoredStatus,
    to: StoredStatus,
    owed: Option<Withheld>,
    holds: Holds,
) -> Decision {
    let reason = holds.reason();
    let wake_at = match reason {
        Some(Withheld::Silenced) => holds.silenced_until,
        _ => None,
    };
    match (from, to) {
        (f, StoredStatus::Down) if f != StoredStatus::Down => match reason {
            Some(r) => Decision {
                withheld: Some(r),
                owe: Some(r),
                wake_at,
                ..Decision::default()
            },
            None => Decision {
                alert: true,
                ..Decision::default()
            },
        },
        (StoredStatus::Down, StoredStatus::Up) => match (owed, reason) {
            // The down alert never went out: neither does the recovery.
            (Some(o), r) => Decision {
                withheld: Some(r.unwrap_or(o)),
                ..Decision::default()
            },
            (None, Some(r)) => Decision {
                withheld: Some(r),
                ..Decision::default()
            },
            (None, None) => Decision {
                alert: true,
                ..Decision::default()
            },
        },
        (StoredStatus::Down, StoredStatus::Down) if owed.is_some() => match reason {
            Some(r) => Decision {
                owe: Some(r),
                wake_at,
                ..Decision::default()
            },
            None => Decision {
                release: true,
                ..Decision::default()
            },
        },
        // Paused, pending, first pings: nothing alerts and nothing stays owed.
        _ => Decision::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use StoredStatus::{Down, Paused, Up};

    fn silenced() -> Holds {
        Holds {
            silenced_until: Some(Utc.with_ymd_and_hms(2026, 3, 1, 4, 0, 0).unwrap()),
            parent_down: false,
        }
    }

    fn parent_down() -> Holds {
        Holds {
            silenced_until: None,
            parent_down: true,
        }
    }

    #[test]
    fn a_down_flip_alerts_unless_something_holds_it_and_is_then_owed() {
        assert!(decide(Up, Down, None, Holds::default()).alert);
        let d = decide(Up, Down, None, silenced());
        assert_eq!(
            (d.alert, d.withheld, d.owe, d.wake_at),
            (
                false,
                Some(Withheld::Silenced),
                Some(Withheld::Silenced),
                silenced().silenced_until
            )
        );
        let d = decide(Up, Down, None, parent_down());
        assert_eq!(
            (d.alert, d.owe, d.wake_at),
            (false, Some(Withheld::Suppressed), None)
        );
    }

    #[test]
    fn an_owed_alert_goes_out_once_nothing_holds_it_and_never_for_a_recovery() {
        assert!(decide(Down, Down, Some(Withheld::Silenced), Holds::default()).release);
        let still = decide(Down, Down, Some(Withheld::Silenced), parent_down());
        assert_eq!(
            (still.release, still.owe),
            (false, Some(Withheld::Suppressed))
        );
        let up = decide(Down, Up, Some(Withheld::Suppressed), Holds::default());
        assert_eq!(
            (up.alert, up.withheld, up.owe),
            (false, Some(Withheld::Suppressed), None)
        );
        assert_eq!(
            decide(Down, Paused, Some(Withheld::Silenced), Holds::default()),
            Decision::default()
        );
    }

    #[test]
    fn a_recovery_alerts_only_when_its_down_alert_went_out_and_nothing_holds_it() {
        assert!(decide(Down, Up, None, Holds::default()).alert);
        let d = decide(Down, Up, None, silenced());
        assert_eq!((d.alert, d.withheld), (false, Some(Withheld::Silenced)));
    }
}
