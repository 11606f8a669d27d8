//! The one exit-code table every client verb (`refresh`, `status`, `schedule`,
//! `project create`) follows, so a script treats them alike. README.md ("Exit
//! codes") is the table as users read it; `heartbeat run` is the exception by
//! design: it exits with the wrapped command's code.

/// It worked; for `status --fail-on-down`, nothing is down.
pub const SUCCESS: u8 = 0;
/// It worked, and the thing asked about is bad: the job failed or was
/// cancelled, a heartbeat is down (`status --fail-on-down`).
pub const BAD: u8 = 1;
/// The command could not be carried out: a bad argument or expression, a
/// request the daemon refused (400, 404, 409, 422), the daemon unreachable, or
/// the key missing or refused (401, 403). One code for all of them, as
/// `refresh` always had: the stderr line says which.
pub const USAGE_OR_CONNECTION: u8 = 2;
/// The job being followed disappeared (the daemon restarted).
pub const VANISHED: u8 = 3;
/// `--timeout` ran out while the job was still running (the job goes on).
pub const TIMED_OUT: u8 = 4;
