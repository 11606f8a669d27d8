//! Status from time: a pure function of a heartbeat's signals, its expectation and
//! `now`, so the API (at read) and the deadline loop (at the deadline) agree, and
//! tests choose the clock.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::schedule::HeartbeatSchedule;
use super::text_column::text_enum;

/// What a heartbeat looks like to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Never pinged.
    Pending,
    Up,
    /// Past the expected time but within grace.
    Late,
    /// Past expected time plus grace, a start that never finished, or a failure.
    Down,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Up => "up",
            Status::Late => "late",
            Status::Down => "down",
            Status::Paused => "paused",
        }
    }

    /// The coarse status the database stores and flips between: late is up with a
    /// warning, not a transition anyone is alerted about.
    pub fn stored(self) -> StoredStatus {
        match self {
            Status::Pending => StoredStatus::Pending,
            Status::Up | Status::Late => StoredStatus::Up,
            Status::Down => StoredStatus::Down,
            Status::Paused => StoredStatus::Paused,
        }
    }
}

/// A status as the database stores it (`heartbeat.status`, and both ends of a
/// `heartbeat.flip`): the status as of the last flip. `late` is never stored (see
/// [`Status::stored`]), so it has no value here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    Pending,
    Up,
    Down,
    Paused,
}

text_enum!(StoredStatus {
    Pending => "pending",
    Up => "up",
    Down => "down",
    Paused => "paused",
});

impl From<StoredStatus> for Status {
    fn from(stored: StoredStatus) -> Self {
        match stored {
            StoredStatus::Pending => Status::Pending,
            StoredStatus::Up => Status::Up,
            StoredStatus::Down => Status::Down,
            StoredStatus::Paused => Status::Paused,
        }
    }
}

/// What took a heartbeat down (`heartbeat.failing_cause`, a flip's `cause`),
/// or, for `early` and `too_fast`, what a ping was (docs/monitoring.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A fail ping or a non-zero exit code.
    Fail,
    /// No success by the deadline, or, with a start margin, no start or success
    /// within the margin of a fire time.
    Missed,
    /// A started run that did not finish in time (`max_runtime_seconds`, else
    /// the grace).
    Timeout,
    /// A success too soon after the previous one, or well before its fire time.
    Early,
    /// A run shorter than `min_runtime_seconds`.
    TooFast,
}

text_enum!(Cause {
    Fail => "fail",
    Missed => "missed",
    Timeout => "timeout",
    Early => "early",
    TooFast => "too_fast",
});

/// A run started with a `rid` and not finished yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub rid: uuid::Uuid,
    pub started_at: DateTime<Utc>,
}

/// The rules the deadline loop applies beyond period (or schedule) and grace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Schedule heartbeats: a start or success must come within this of a fire
    /// time; it replaces the grace for the fire.
    pub start_margin: Option<Duration>,
    /// Each started run must finish within this (without it: the grace, for
    /// the latest start only).
    pub max_runtime: Option<Duration>,
}

/// When pings are expected.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// Every `period`, measured from the last signal.
    Period(Duration),
    /// At each fire time of a cron schedule after the last signal.
    Schedule(Box<HeartbeatSchedule>),
}

/// The inputs, as stored on the heartbeat row.
#[derive(Debug, Clone)]
pub struct Signals {
    pub paused: bool,
    pub resumed_at: Option<DateTime<Utc>>,
    pub last_signal_at: Option<DateTime<Utc>>,
    pub last_signal_failed: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// The streaks as of the last ping or counted miss.
    pub streaks: Streaks,
    pub thresholds: Thresholds,
    pub rules: Rules,
    /// Runs started with a `rid` and not finished, oldest first (kept while a
    /// run-time rule is on).
    pub runs: Vec<Run>,
}

/// `failure_threshold` and `recovery_threshold` (1 to 100, default 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in a row that take a heartbeat down.
    pub failure: i32,
    /// Successes in a row that bring it back up.
    pub recovery: i32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failure: 1,
            recovery: 1,
        }
    }
}

/// Failures and successes in a row, and the state they led to. The ping
/// statement folds pings in (`heartbeat.fold_signals`); [`evaluate`] folds in
/// the deadlines missed since, and the deadline loop stores what it gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streaks {
    /// Failures in a row: fail pings, non-zero exit codes, missed deadlines.
    pub fail: i32,
    /// Successes in a row.
    pub ok: i32,
    /// Down by the thresholds: set at the `failure`-th failure in a row, cleared
    /// at the `recovery`-th success in a row.
    pub failing: bool,
    /// When `failing` last changed.
    pub failing_since: Option<DateTime<Utc>>,
    /// What made it `failing`.
    pub cause: Option<Cause>,
    /// The expected time of the last missed deadline counted: the next
    /// expectation runs from it, so each missed period or fire time counts once.
    pub missed_at: Option<DateTime<Utc>>,
}

/// Most missed deadlines one evaluation counts: a heartbeat left unwatched for
/// long (the loop stopped) catches up over several passes instead of one long
/// computation. The deadline loop stores the count, so nothing is lost.
const MAX_MISSES_PER_EVALUATION: usize = 1000;

/// The status at one instant, and when it changes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub status: Status,
    /// When the current status began, when known (the flip's recorded time).
    pub since: Option<DateTime<Utc>>,
    /// When the next ping is expected (past it: late).
    pub due_at: Option<DateTime<Utc>>,
    /// The next deadline: strictly after this instant a miss is counted (and
    /// the heartbeat is down once the misses reach its failure threshold). None
    /// when nothing is left to miss: paused, pending with nothing started, or down
    /// with no success since.
    pub down_at: Option<DateTime<Utc>>,
    /// The streaks at `now`, missed deadlines included.
    pub streaks: Streaks,
    /// The pending start at `now`: one whose grace passed was counted as a miss.
    pub started_at: Option<DateTime<Utc>>,
    /// The open `rid` runs at `now`: one past its maximum run time was counted.
    pub runs: Vec<Run>,
    /// Schedule heartbeats with a start margin: a success before this is early
    /// (the next fire time after the last signal, less the margin).
    pub early_before: Option<DateTime<Utc>>,
    /// Failures this evaluation counted beyond the stored streaks: missed
    /// deadlines or starts, and runs that timed out.
    pub missed: u32,
    pub timed_out: u32,
    /// Each of them, oldest first: the deadline loop records them in the
    /// heartbeat's detection events, so one below the failure threshold is
    /// seen too.
    pub counted: Vec<Counted>,
}

/// One failure the clock counted: a missed deadline or start, or a run that
/// timed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The instant it happened: the deadline or the run's limit.
    pub at: DateTime<Utc>,
    /// `missed` or `timeout`.
    pub cause: Cause,
    /// The failure streak with it counted.
    pub failure_streak: i32,
    what: Missed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Missed {
    /// Nothing heard by `due` + the grace.
    Deadline { due: DateTime<Utc>, grace: Duration },
    /// No start or success within the margin of the fire time `fire`.
    Start {
        fire: DateTime<Utc>,
        margin: Duration,
    },
    /// A run started at `started` (with `rid`) that outlived its limit
    /// (`max_runtime_seconds`, or the grace without one).
    Run {
        started: DateTime<Utc>,
        rid: Option<uuid::Uuid>,
        limit: Duration,
        by_grace: bool,
    },
}

impl Counted {
    /// Why, in words, with the rule's limit.
    pub fn reason(&self) -> String {
        let at = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        match &self.what {
            Missed::Deadline { due, grace } => format!(
                "nothing heard by {}: due {}, grace_seconds {}",
                at(&self.at),
                at(due),
                grace.num_seconds()
            ),
            Missed::Start { fire, margin } => format!(
                "no start or success within start_margin_seconds {} of the fire time {}",
                margin.num_seconds(),
                at(fire)
            ),
            Missed::Run {
                started,
                rid,
                limit,
                by_grace,
            } => format!(
                "{} started {} not finished within {} {}",
                rid.map(|r| format!("run {r}"))
                    .unwrap_or_else(|| "the run".into()),
                at(started),
                if *by_grace {
                    "grace_seconds"
                } else {
                    "max_runtime_seconds"
                },
                limit.num_seconds()
            ),
        }
    }
}

/// Computes the status of a heartbeat at `now`: counts the deadlines missed
/// since the stored streaks (each a failure), then reads the status off them.
pub fn evaluate(
    expectation: &Expectation,
    grace: Duration,
    signals: &Signals,
    now: DateTime<Utc>,
) -> Evaluation {
    let mut streaks = signals.streaks.clone();
    let mut started_at = signals.started_at;
    let mut runs = signals.runs.clone();
    if signals.paused {
        return Evaluation {
            status: Status::Paused,
            since: None,
            due_at: None,
            down_at: None,
            streaks,
            started_at,
            runs,
            early_before: None,
            missed: 0,
            timed_out: 0,
            counted: Vec::new(),
        };
    }
    // The start margin is a schedule's rule: a period has no fire time.
    let margin = match expectation {
        Expectation::Schedule(_) => signals.rules.start_margin,
        Expectation::Period(_) => None,
    };
    let max_runtime = signals.rules.max_runtime;
    let mut due_at;
    let mut down_at;
    let mut counted = 0;
    let (mut missed_count, mut timed_out) = (0, 0);
    let mut counted_list: Vec<Counted> = Vec::new();
    loop {
        // Expectations run from the latest of the last signal, a resume and the
        // last counted miss, but only once something has ever been heard: a
        // silent new heartbeat stays pending.
        let reference = signals
            .last_signal_at
            .map(|s| answered_fire(expectation, margin, s))
            .map(|s| s.max(signals.resumed_at.unwrap_or(s)))
            .map(|r| r.max(streaks.missed_at.unwrap_or(r)));
        due_at = reference.and_then(|r| next_due(expectation, r));
        // Down with no success since: another miss changes nothing.
        if streaks.failing && streaks.ok == 0 {
            down_at = None;
            break;
        }
        // The fire's deadline: with a start margin, a start (or success) within
        // the margin of the fire time answers it, and the run is then timed
        // on its own; else a success must come within the grace.
        let due_down = due_at.and_then(|d| match margin {
            Some(m) => {
                let within = |s: DateTime<Utc>| d - m <= s && s <= d + m;
                let started =
                    started_at.is_some_and(within) || runs.iter().any(|r| within(r.started_at));
                (!started).then_some(d + m)
            }
            None => Some(d + grace),
        });
        // The run clocks: each `rid` run with a maximum run time, and the
        // latest start without a rid (timed by the grace when there is none).
        let start_down = started_at.map(|s| s + max_runtime.unwrap_or(grace));
        let run_down = max_runtime.and_then(|r| runs.iter().map(|run| run.started_at + r).min());
        let clock_down = match (start_down, run_down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        down_at = match (due_down, clock_down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(missed) = down_at.filter(|d| now > *d) else {
            break;
        };
        if counted == MAX_MISSES_PER_EVALUATION {
            break;
        }
        counted += 1;
        let run_limit = max_runtime.unwrap_or(grace);
        let by_grace = max_runtime.is_none();
        let what;
        let cause = if clock_down == Some(missed) {
            // A run that answered a fire's start margin and then timed out has
            // had its failure: the fire is not missed a second time.
            let answered = |s: DateTime<Utc>| {
                margin
                    .zip(due_at)
                    .filter(|(m, d)| *d - *m <= s && s <= *d + *m)
                    .map(|(_, d)| d)
            };
            let mut run = Missed::Run {
                started: missed - run_limit,
                rid: None,
                limit: run_limit,
                by_grace,
            };
            if start_down == Some(missed) {
                if let Some(d) = started_at.and_then(answered) {
                    streaks.missed_at = Some(d);
                }
                started_at = None;
            } else if let Some(i) = runs
                .iter()
                .position(|run| max_runtime.map(|r| run.started_at + r) == Some(missed))
            {
                let timed = runs.remove(i);
                if let Some(d) = answered(timed.started_at) {
                    streaks.missed_at = Some(d);
                }
                run = Missed::Run {
                    started: timed.started_at,
                    rid: Some(timed.rid),
                    limit: run_limit,
                    by_grace: false,
                };
            }
            what = run;
            timed_out += 1;
            Cause::Timeout
        } else {
            streaks.missed_at = due_at;
            missed_count += 1;
            let due = due_at.unwrap_or(missed);
            what = match margin {
                Some(margin) => Missed::Start { fire: due, margin },
                None => Missed::Deadline { due, grace },
            };
            Cause::Missed
        };
        streaks.fail += 1;
        streaks.ok = 0;
        if !streaks.failing && streaks.fail >= signals.thresholds.failure {
            streaks.failing = true;
            streaks.failing_since = Some(missed);
            streaks.cause = Some(cause);
        }
        counted_list.push(Counted {
            at: missed,
            cause,
            failure_streak: streaks.fail,
            what,
        });
    }
    let early_before = margin.zip(signals.last_signal_at).and_then(|(m, last)| {
        let last = answered_fire(expectation, margin, last);
        let reference = last.max(signals.resumed_at.unwrap_or(last));
        next_due(expectation, reference).map(|fire| fire - m)
    });
    if streaks.failing {
        return Evaluation {
            status: Status::Down,
            since: streaks.failing_since,
            due_at,
            down_at,
            streaks,
            started_at,
            runs,
            early_before,
            missed: missed_count,
            timed_out,
            counted: counted_list,
        };
    }
    let status = match (signals.last_signal_at, due_at) {
        (None, _) => Status::Pending,
        (Some(_), Some(due)) if now > due => Status::Late,
        _ => Status::Up,
    };
    let since = match status {
        Status::Late => due_at,
        Status::Up => signals.last_signal_at,
        _ => None,
    };
    Evaluation {
        status,
        since,
        due_at,
        down_at,
        streaks,
        started_at,
        runs,
        early_before,
        missed: missed_count,
        timed_out,
        counted: counted_list,
    }
}

/// How many fire times the deadline loop stores for the ping statement
/// (`heartbeat.fire_times`): enough for the successes that may come between
/// two of its passes.
pub const FIRE_TIMES_STORED: usize = 16;

/// The next `n` fire times strictly after `after`; none for a period. The ping
/// statement judges a schedule's `early` successes against them
/// (`heartbeat.early_before_after`, migration 0021), as [`evaluate`] does
/// against the schedule.
pub fn fire_times(expectation: &Expectation, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let Expectation::Schedule(s) = expectation else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(n);
    let mut at = after;
    while out.len() < n {
        match s.next_after(at) {
            Some(fire) if fire > at => {
                out.push(fire);
                at = fire;
            }
            _ => break,
        }
    }
    out
}

/// With a start margin, a signal up to the margin before a fire time answers
/// that fire: expectations then run from the fire time, so the fire is neither
/// missed nor expected a second time.
fn answered_fire(
    expectation: &Expectation,
    margin: Option<Duration>,
    signal: DateTime<Utc>,
) -> DateTime<Utc> {
    match margin.and_then(|m| next_due(expectation, signal).map(|f| (f, m))) {
        Some((fire, m)) if fire - m <= signal => fire,
        _ => signal,
    }
}

/// The next expected ping after `reference`.
fn next_due(expectation: &Expectation, reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match expectation {
        Expectation::Period(p) => Some(reference + *p),
        Expectation::Schedule(s) => s.next_after(reference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    fn signals() -> Signals {
        Signals {
            paused: false,
            resumed_at: None,
            last_signal_at: None,
            last_signal_failed: false,
            started_at: None,
            streaks: Streaks::default(),
            thresholds: Thresholds::default(),
            rules: Rules::default(),
            runs: Vec::new(),
        }
    }

    /// The streaks the ping statement stores after one fail ping at `at`.
    fn failed_once(at: DateTime<Utc>) -> Streaks {
        Streaks {
            fail: 1,
            failing: true,
            failing_since: Some(at),
            ..Streaks::default()
        }
    }

    fn hourly() -> Expectation {
        Expectation::Period(Duration::hours(1))
    }

    const GRACE: Duration = Duration::minutes(5);

    #[test]
    fn stored_statuses_go_to_and_from_text_columns_and_late_is_not_one() {
        use bytes::BytesMut;
        use tokio_postgres::types::{FromSql, ToSql, Type};
        for &s in StoredStatus::ALL {
            let mut out = BytesMut::new();
            s.to_sql_checked(&Type::TEXT, &mut out).unwrap();
            assert_eq!(&out[..], s.as_str().as_bytes());
            assert_eq!(StoredStatus::from_sql(&Type::VARCHAR, &out).unwrap(), s);
            assert_eq!(Status::from(s).stored(), s);
            assert_eq!(Status::from(s).as_str(), s.as_str());
        }
        assert_eq!(Status::Late.stored(), StoredStatus::Up);
        assert!(StoredStatus::from_sql(&Type::TEXT, b"late").is_err());
        assert!(!<StoredStatus as ToSql>::accepts(&Type::INT4));
        let mut out = BytesMut::new();
        assert!(StoredStatus::Up
            .to_sql_checked(&Type::INT4, &mut out)
            .is_err());
    }

    #[test]
    fn a_heartbeat_never_pinged_is_pending_and_never_goes_down() {
        let e = evaluate(&hourly(), GRACE, &signals(), t(23, 0, 0));
        assert_eq!(e.status, Status::Pending);
        assert_eq!(e.down_at, None);
    }

    #[test]
    fn a_success_makes_it_up_until_the_period_then_late_within_grace_then_down() {
        let s = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            ..signals()
        };
        let at = |now| evaluate(&hourly(), GRACE, &s, now).status;
        assert_eq!(at(t(10, 0, 0)), Status::Up);
        assert_eq!(at(t(11, 0, 0)), Status::Up, "exactly at the period");
        assert_eq!(at(t(11, 0, 1)), Status::Late, "one second past the period");
        assert_eq!(at(t(11, 5, 0)), Status::Late, "exactly at period + grace");
        assert_eq!(at(t(11, 5, 1)), Status::Down, "one second past grace");
    }

    #[test]
    fn down_is_dated_at_the_deadline_not_at_detection() {
        let s = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            ..signals()
        };
        let e = evaluate(&hourly(), GRACE, &s, t(18, 0, 0));
        assert_eq!(e.status, Status::Down);
        assert_eq!(e.since, Some(t(11, 5, 0)));
        let before = evaluate(&hourly(), GRACE, &s, t(10, 30, 0));
        assert_eq!(before.down_at, Some(t(11, 5, 0)));
        assert_eq!(before.due_at, Some(t(11, 0, 0)));
    }

    #[test]
    fn a_failure_is_down_at_once_and_a_later_success_is_up() {
        let failed = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            last_signal_failed: true,
            streaks: failed_once(t(10, 0, 0)),
            ..signals()
        };
        let e = evaluate(&hourly(), GRACE, &failed, t(10, 0, 0));
        assert_eq!((e.status, e.since), (Status::Down, Some(t(10, 0, 0))));
        let recovered = Signals {
            last_signal_at: Some(t(10, 1, 0)),
            streaks: Streaks {
                ok: 1,
                failing_since: Some(t(10, 1, 0)),
                ..Streaks::default()
            },
            ..signals()
        };
        let e = evaluate(&hourly(), GRACE, &recovered, t(10, 1, 0));
        assert_eq!((e.status, e.since), (Status::Up, Some(t(10, 1, 0))));
    }

    #[test]
    fn a_start_with_no_finish_is_down_once_grace_passes_after_it() {
        let s = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            started_at: Some(t(10, 10, 0)),
            ..signals()
        };
        let at = |now| evaluate(&hourly(), GRACE, &s, now);
        assert_eq!(at(t(10, 15, 0)).status, Status::Up);
        assert_eq!(at(t(10, 15, 1)).status, Status::Down);
        assert_eq!(at(t(10, 15, 1)).since, Some(t(10, 15, 0)));
    }

    #[test]
    fn a_start_on_a_new_heartbeat_stays_pending_until_grace_passes() {
        let s = Signals {
            started_at: Some(t(10, 0, 0)),
            ..signals()
        };
        assert_eq!(
            evaluate(&hourly(), GRACE, &s, t(10, 5, 0)).status,
            Status::Pending
        );
        assert_eq!(
            evaluate(&hourly(), GRACE, &s, t(10, 5, 1)).status,
            Status::Down
        );
    }

    #[test]
    fn paused_wins_over_everything() {
        let s = Signals {
            paused: true,
            last_signal_at: Some(t(1, 0, 0)),
            last_signal_failed: true,
            streaks: failed_once(t(1, 0, 0)),
            ..signals()
        };
        assert_eq!(
            evaluate(&hourly(), GRACE, &s, t(23, 0, 0)).status,
            Status::Paused
        );
    }

    #[test]
    fn a_resume_restarts_the_clock() {
        let s = Signals {
            last_signal_at: Some(t(1, 0, 0)),
            resumed_at: Some(t(20, 0, 0)),
            ..signals()
        };
        assert_eq!(
            evaluate(&hourly(), GRACE, &s, t(20, 30, 0)).status,
            Status::Up
        );
        assert_eq!(
            evaluate(&hourly(), GRACE, &s, t(21, 5, 1)).status,
            Status::Down
        );
    }

    #[test]
    fn a_schedule_expects_the_next_fire_time_after_the_last_signal() {
        let sched = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("17 * * * *", "UTC").unwrap(),
        ));
        let s = Signals {
            last_signal_at: Some(t(10, 17, 30)),
            ..signals()
        };
        let e = evaluate(&sched, GRACE, &s, t(10, 30, 0));
        assert_eq!(e.due_at, Some(t(11, 17, 0)));
        assert_eq!(e.down_at, Some(t(11, 22, 0)));
        assert_eq!(
            evaluate(&sched, GRACE, &s, t(11, 22, 1)).status,
            Status::Down
        );
    }

    #[test]
    fn a_daily_schedule_across_spring_forward_expects_the_run_at_local_time() {
        // Europe/Paris springs forward on 2026-03-29 at 02:00 -> 03:00.
        let sched = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("30 4 * * *", "Europe/Paris").unwrap(),
        ));
        let last = Utc.with_ymd_and_hms(2026, 3, 28, 3, 30, 5).unwrap(); // 04:30 CET
        let s = Signals {
            last_signal_at: Some(last),
            ..signals()
        };
        let e = evaluate(&sched, GRACE, &s, last);
        // 04:30 CEST is 02:30 UTC: 23 hours after the previous run, not 24.
        assert_eq!(
            e.due_at,
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 2, 30, 0).unwrap())
        );
    }

    #[test]
    fn a_daily_schedule_across_fall_back_expects_the_run_25_hours_later() {
        // Europe/Paris falls back on 2026-10-25 at 03:00 -> 02:00.
        let sched = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("30 4 * * *", "Europe/Paris").unwrap(),
        ));
        let last = Utc.with_ymd_and_hms(2026, 10, 24, 2, 30, 5).unwrap(); // 04:30 CEST
        let s = Signals {
            last_signal_at: Some(last),
            ..signals()
        };
        let e = evaluate(&sched, GRACE, &s, last);
        assert_eq!(
            e.due_at,
            Some(Utc.with_ymd_and_hms(2026, 10, 25, 3, 30, 0).unwrap())
        );
    }

    #[test]
    fn a_schedule_inside_the_skipped_hour_is_expected_after_the_gap() {
        // 02:30 does not exist in Paris on 2026-03-29.
        let sched = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("30 2 * * *", "Europe/Paris").unwrap(),
        ));
        let last = Utc.with_ymd_and_hms(2026, 3, 28, 1, 30, 5).unwrap(); // 02:30 CET
        let s = Signals {
            last_signal_at: Some(last),
            ..signals()
        };
        let due = evaluate(&sched, GRACE, &s, last).due_at.unwrap();
        // Vixie cron runs a fixed-time entry whose local time does not exist at the
        // first valid instant after the gap: 03:00 CEST, 01:00 UTC.
        assert_eq!(due, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
    }

    fn hourly_at_zero() -> Expectation {
        Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("0 * * * *", "UTC").unwrap(),
        ))
    }

    #[test]
    fn a_fire_with_no_start_within_the_margin_is_missed_after_the_margin_not_the_grace() {
        let s = Signals {
            last_signal_at: Some(t(10, 0, 10)),
            rules: Rules {
                start_margin: Some(Duration::minutes(5)),
                max_runtime: None,
            },
            ..signals()
        };
        let at = |now| evaluate(&hourly_at_zero(), Duration::hours(1), &s, now);
        assert_eq!(at(t(10, 30, 0)).down_at, Some(t(11, 5, 0)));
        assert_eq!(at(t(11, 5, 0)).status, Status::Late);
        let e = at(t(11, 5, 1));
        assert_eq!((e.status, e.since), (Status::Down, Some(t(11, 5, 0))));
        assert_eq!(e.streaks.cause, Some(Cause::Missed));
        assert_eq!(e.missed, 1);
        assert_eq!(at(t(10, 30, 0)).early_before, Some(t(10, 55, 0)));
    }

    #[test]
    fn a_success_within_the_margin_before_the_fire_answers_it() {
        let s = Signals {
            last_signal_at: Some(t(10, 58, 0)),
            rules: Rules {
                start_margin: Some(Duration::minutes(5)),
                max_runtime: None,
            },
            ..signals()
        };
        let e = evaluate(&hourly_at_zero(), Duration::hours(1), &s, t(11, 30, 0));
        assert_eq!(e.due_at, Some(t(12, 0, 0)));
        assert_eq!(e.status, Status::Up);
    }

    #[test]
    fn the_stored_fire_times_are_the_next_ones_strictly_after_the_signal() {
        let every_five = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("*/5 * * * *", "UTC").unwrap(),
        ));
        assert_eq!(
            fire_times(&every_five, t(10, 4, 30), 3),
            [t(10, 5, 0), t(10, 10, 0), t(10, 15, 0)]
        );
        assert_eq!(fire_times(&every_five, t(10, 5, 0), 1), [t(10, 10, 0)]);
        assert!(fire_times(&hourly(), t(10, 0, 0), 3).is_empty());
        // Across spring forward in Paris, as the schedule fires.
        let daily = Expectation::Schedule(Box::new(
            HeartbeatSchedule::parse("30 2 * * *", "Europe/Paris").unwrap(),
        ));
        let last = Utc.with_ymd_and_hms(2026, 3, 28, 1, 30, 5).unwrap();
        let (evaluated, stored) = (
            evaluate(
                &daily,
                GRACE,
                &Signals {
                    last_signal_at: Some(last),
                    ..signals()
                },
                last,
            )
            .due_at,
            fire_times(&daily, last, 2),
        );
        assert_eq!(evaluated, Some(stored[0]));
        assert_eq!(
            stored[0],
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_missed_deadline_and_a_timed_out_run_are_counted_with_their_reasons() {
        let s = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            started_at: Some(t(10, 30, 0)),
            thresholds: Thresholds {
                failure: 3,
                recovery: 1,
            },
            ..signals()
        };
        let e = evaluate(&hourly(), GRACE, &s, t(11, 5, 1));
        let reasons: Vec<(Cause, i32, String)> = e
            .counted
            .iter()
            .map(|c| (c.cause, c.failure_streak, c.reason()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    Cause::Timeout,
                    1,
                    "the run started 2026-03-01T10:30:00Z not finished within grace_seconds 300"
                        .to_string()
                ),
                (
                    Cause::Missed,
                    2,
                    "nothing heard by 2026-03-01T11:05:00Z: due 2026-03-01T11:00:00Z, grace_seconds 300"
                        .to_string()
                ),
            ]
        );
        // Two failures of three: still up, expected again at the next period
        // after the missed due time.
        assert_eq!((e.status, e.due_at), (Status::Up, Some(t(12, 0, 0))));
    }

    #[test]
    fn each_run_times_out_on_its_own_clock() {
        let run = |m: u32, id: u128| Run {
            rid: uuid::Uuid::from_u128(id),
            started_at: t(10, m, 0),
        };
        let s = Signals {
            last_signal_at: Some(t(10, 0, 0)),
            rules: Rules {
                start_margin: None,
                max_runtime: Some(Duration::minutes(10)),
            },
            runs: vec![run(1, 1), run(5, 2)],
            thresholds: Thresholds {
                failure: 2,
                recovery: 1,
            },
            ..signals()
        };
        let at = |now| evaluate(&Expectation::Period(Duration::days(1)), GRACE, &s, now);
        assert_eq!(at(t(10, 11, 0)).streaks.fail, 0);
        let one = at(t(10, 11, 1));
        assert_eq!((one.streaks.fail, one.runs.len()), (1, 1));
        assert_eq!(one.down_at, Some(t(10, 15, 0)));
        let both = at(t(10, 15, 1));
        assert_eq!((both.status, both.timed_out), (Status::Down, 2));
        assert_eq!(both.streaks.cause, Some(Cause::Timeout));
        assert!(both.runs.is_empty());
    }
}
