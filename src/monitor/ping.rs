//! Pings: what one says, and the group-commit writer that records them.
//!
//! A ping is recorded only once it is committed. Pings that arrive together are
//! written by one statement (one commit, one fsync), then every waiting caller is
//! answered; while one batch is being written the next one gathers, and starts
//! early once it is large (`PingWriter::start`). Concurrent batches take their
//! heartbeats' row locks in token order, so they queue behind each other rather
//! than deadlock. When PostgreSQL is unreachable the batch fails and every ping in
//! it gets [`PingWriteError`], which the ping routes (`super::ping_routes`) answer
//! with 503 so clients (curl `--retry`) try again. The daemon's own job
//! heartbeats (`super::selfcheck`) go through the same writer, which is why it
//! knows nothing of HTTP. docs/decisions.md §12 and §19 say why it is shaped so.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::heartbeat::HeartbeatToken;
use super::status::Cause;
use crate::ops::prometheus::Metrics;

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind {
    Success,
    Fail,
    Start,
    /// Kept in the history; changes no status.
    Log,
    /// A ping the heartbeat's `methods: "POST"` rule ignores (healthchecks.io's
    /// `ign`): kept in the history and counted, changes nothing else. Never
    /// sent by a client: the ping statement records a ping so when it finds
    /// the rule on the heartbeat ([`ignorable`]).
    Ignored,
}

impl PingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Success => "success",
            PingKind::Fail => "fail",
            PingKind::Start => "start",
            PingKind::Log => "log",
            PingKind::Ignored => "ign",
        }
    }
}

/// One ping, as written.
#[derive(Debug, Clone)]
pub struct PingRecord {
    pub token: HeartbeatToken,
    pub kind: PingKind,
    pub exit_code: Option<i32>,
    pub rid: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub source: Option<String>,
    pub user_agent: Option<String>,
    pub body: Option<String>,
    /// `http` or `https`, as the request arrived; None for a ping that came
    /// through no HTTP request (the daemon's own jobs).
    pub scheme: Option<&'static str>,
    /// `GET`, `HEAD` or `POST`; None as for `scheme`.
    pub method: Option<&'static str>,
}

/// Whether a heartbeat with healthchecks.io's `methods: "POST"` ignores `p`: a
/// ping that came over HTTP with another method. Pings from no HTTP request
/// (the daemon's own jobs) are never ignored. The ping statement's ring insert
/// says the same in SQL (`i.method <> 'POST'`).
pub fn ignorable(p: &PingRecord) -> bool {
    matches!(p.method, Some(m) if m != "POST")
}

impl PingRecord {
    /// A bare ping of `kind`, as the daemon's own jobs send them.
    pub fn new(token: HeartbeatToken, kind: PingKind, at: DateTime<Utc>) -> Self {
        Self {
            token,
            kind,
            exit_code: None,
            rid: None,
            at,
            source: None,
            user_agent: None,
            body: None,
            scheme: None,
            method: None,
        }
    }
}

/// How a ping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    Recorded,
    UnknownToken,
}

#[derive(Debug, thiserror::Error)]
#[error("ping not recorded: {0}")]
pub struct PingWriteError(pub String);

struct Waiting {
    ping: PingRecord,
    reply: oneshot::Sender<Result<PingOutcome, PingWriteError>>,
}

/// Hands pings to the group-commit writers. Cheap to clone.
#[derive(Clone)]
pub struct PingWriter {
    queue: mpsc::Sender<Waiting>,
}

/// Room for queued pings before new ones wait for room: the bound on pings held in
/// memory (a full queue makes ping handlers wait, it never grows).
const QUEUE_DEPTH: usize = 8192;

/// What the writers share: the queue they gather batches from (one gatherer at a
/// time) and how many batches are being written.
struct Writers {
    queue: tokio::sync::Mutex<mpsc::Receiver<Waiting>>,
    in_flight: tokio::sync::watch::Sender<usize>,
    batch_max: usize,
    overlap_min: usize,
    kept: i64,
    /// Counts the pings the detection rules flag (`early`, `too_fast`).
    metrics: Metrics,
}

impl PingWriter {
    /// Starts `writers` writers on the current runtime. They end when every handle
    /// is dropped.
    ///
    /// One writer gathers at a time. With no batch in flight it takes whatever is
    /// queued, so a lone ping is written at once. While another batch is being
    /// written it keeps gathering until that batch commits or `overlap_min` pings
    /// are queued: the next batch then runs while the previous one waits for its
    /// WAL flush, and batches stay large enough that the statement's fixed cost
    /// is shared by many pings.
    pub fn start(
        pool: Pool,
        batch_max: usize,
        writers: usize,
        overlap_min: usize,
        pings_kept: i64,
        metrics: Metrics,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let shared = std::sync::Arc::new(Writers {
            queue: tokio::sync::Mutex::new(rx),
            in_flight: tokio::sync::watch::Sender::new(0),
            batch_max: batch_max.max(1),
            overlap_min: overlap_min.max(1),
            kept: pings_kept,
            metrics,
        });
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(shared.clone(), pool.clone()));
        }
        Self { queue }
    }

    /// Records one ping; returns once it is committed (or failed).
    pub async fn record(&self, ping: PingRecord) -> Result<PingOutcome, PingWriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiting { ping, reply })
            .await
            .map_err(|_| PingWriteError("ping writer stopped".into()))?;
        answer
            .await
            .map_err(|_| PingWriteError("ping writer stopped".into()))?
    }
}

/// Takes the next batch off the queue (see `PingWriter::start`); false once every
/// handle is gone.
async fn gather(w: &Writers, batch: &mut Vec<Waiting>) -> bool {
    let mut queue = w.queue.lock().await;
    if queue.recv_many(batch, w.batch_max).await == 0 {
        return false;
    }
    let mut in_flight = w.in_flight.subscribe();
    while batch.len() < w.overlap_min.min(w.batch_max) {
        let room = w.batch_max - batch.len();
        tokio::select! {
            n = queue.recv_many(batch, room) => if n == 0 { break },
            _ = in_flight.wait_for(|n| *n == 0) => break,
        }
    }
    w.in_flight.send_modify(|n| *n += 1);
    true
}

/// Orders a batch by token. Two batches in flight then lock heartbeat rows in the
/// same order, so one waits for the other instead of deadlocking. The sort is
/// stable: one heartbeat's pings keep their arrival order, which gives their
/// `seq`.
fn lock_order(batch: &mut [Waiting]) {
    batch.sort_by(|a, b| a.ping.token.as_str().cmp(b.ping.token.as_str()));
}

async fn write_loop(w: std::sync::Arc<Writers>, pool: Pool) {
    let mut batch = Vec::with_capacity(w.batch_max);
    while gather(&w, &mut batch).await {
        lock_order(&mut batch);
        let pings: Vec<&PingRecord> = batch.iter().map(|w| &w.ping).collect();
        let result = match pool.get().await {
            Ok(client) => write_batch(&client, &pings, w.kept)
                .await
                .map_err(|e| PingWriteError(e.to_string())),
            Err(e) => Err(PingWriteError(e.to_string())),
        };
        w.in_flight.send_modify(|n| *n -= 1);
        match result {
            Ok(Written {
                found,
                early,
                too_fast,
            }) => {
                w.metrics.detection_events("early", early);
                w.metrics.detection_events("too_fast", too_fast);
                for w in batch.drain(..) {
                    let outcome = if found.contains(w.ping.token.as_str()) {
                        PingOutcome::Recorded
                    } else {
                        PingOutcome::UnknownToken
                    };
                    let _ = w.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.0, pings = batch.len(), "ping batch not written");
                for w in batch.drain(..) {
                    let _ = w.reply.send(Err(PingWriteError(e.0.clone())));
                }
            }
        }
    }
}

/// Writes a batch of pings in one statement (one transaction): updates each known
/// heartbeat's signals and deadline, and writes the pings into its ring of `kept`.
/// Returns the tokens that named a heartbeat, and how many pings the detection
/// rules flagged.
///
/// The per-heartbeat summary (how many pings, the last one, the last signal) and
/// each ping's rank among its heartbeat's pings are worked out here rather than in
/// SQL: sorting and grouping a batch costs the database more than the daemon, and
/// the database is the bottleneck of the ping path.
pub async fn write_batch(
    client: &deadpool_postgres::Client,
    pings: &[&PingRecord],
    kept: i64,
) -> Result<Written, tokio_postgres::Error> {
    let batch = BatchColumns::new(pings);
    let stmt = client.prepare_cached(WRITE_PINGS).await?;
    let rows = client
        .query(
            &stmt,
            &[
                &batch.hb_tokens,
                &batch.hb_counts,
                &batch.hb.last_at,
                &batch.hb.last_kind,
                &batch.hb.signal_kind,
                &batch.hb.signal_at,
                &batch.tokens,
                &batch.ranks,
                &batch.kinds,
                &batch.codes,
                &batch.rids,
                &batch.ats,
                &batch.sources,
                &batch.agents,
                &batch.bodies,
                &kept,
                &batch.hb.runs,
                &batch.hb.ok_at,
                &batch.hb.pings,
                &batch.schemes,
                &batch.methods,
                &batch.hb_post.last_at,
                &batch.hb_post.last_kind,
                &batch.hb_post.signal_kind,
                &batch.hb_post.signal_at,
                &batch.hb_post.runs,
                &batch.hb_post.ok_at,
                &batch.hb_post.pings,
                &batch.hb_ignorable,
            ],
        )
        .await?;
    let mut written = Written::default();
    for row in &rows {
        written.found.insert(row.get(0));
        let events: Option<Vec<Option<Cause>>> = row.get(1);
        for event in events.into_iter().flatten().flatten() {
            match event {
                Cause::Early => written.early += 1,
                Cause::TooFast => written.too_fast += 1,
                _ => {}
            }
        }
    }
    Ok(written)
}

/// What one batch wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// The tokens that named a heartbeat.
    pub found: HashSet<String>,
    /// Successes flagged `early` / `too_fast` (`heartbeat.fold_pings`).
    pub early: u64,
    pub too_fast: u64,
}

/// A batch as the statement's array parameters: one row per heartbeat (`hb_*`)
/// and one per ping.
struct BatchColumns<'a> {
    hb_tokens: Vec<&'a str>,
    hb_counts: Vec<i64>,
    /// The heartbeat's pings summed up as if each counts (no `methods` rule).
    hb: SummaryColumns,
    /// Whether any of the heartbeat's pings in the batch is [`ignorable`].
    hb_ignorable: Vec<bool>,
    /// The summary with every [`ignorable`] ping ignored, for a heartbeat with
    /// `methods: "POST"`. All None for a heartbeat none of whose pings is
    /// ignorable (the statement then takes `hb`), and for one all of whose
    /// pings are (nothing of it changes): so the common cases, a heartbeat
    /// pinged only with POST or only with GET, send nothing more.
    hb_post: SummaryColumns,
    tokens: Vec<&'a str>,
    /// 1 for a heartbeat's first ping in the batch, 2 for its second...
    ranks: Vec<i64>,
    kinds: Vec<&'static str>,
    codes: Vec<Option<i32>>,
    rids: Vec<Option<Uuid>>,
    ats: Vec<DateTime<Utc>>,
    sources: Vec<Option<&'a str>>,
    agents: Vec<Option<&'a str>>,
    bodies: Vec<Option<&'a str>>,
    schemes: Vec<Option<&'static str>>,
    methods: Vec<Option<&'static str>>,
}

/// One heartbeat's pings in a batch, summed up for the statement's per-heartbeat
/// row. Ignored pings (kind [`PingKind::Ignored`]) only take their place in
/// `pings`, so that each ping keeps its rank there.
#[derive(Debug)]
struct Summary {
    /// The last ping that is not ignored.
    last: Option<(DateTime<Utc>, &'static str)>,
    /// The last ping that is neither a `log` nor ignored (the one that sets the
    /// status), if any.
    signal: Option<(DateTime<Utc>, &'static str)>,
    /// Signals in arrival order as runs (`[2, -1]`: two successes then a failure).
    runs: Vec<i32>,
    /// The last success, if any.
    ok_at: Option<DateTime<Utc>>,
    /// Every ping in arrival order as a JSON array of `[kind, at, rid]`.
    pings: String,
}

impl Summary {
    fn new() -> Self {
        Self {
            last: None,
            signal: None,
            runs: Vec::new(),
            ok_at: None,
            pings: String::from("["),
        }
    }

    fn add(&mut self, p: &PingRecord, kind: PingKind) {
        if self.pings.len() > 1 {
            self.pings.push(',');
        }
        let rid = p
            .rid
            .map(|r| format!("\"{r}\""))
            .unwrap_or_else(|| "null".into());
        // RFC 3339 with microseconds: what PostgreSQL stores, so no rounding.
        let at = p.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.pings
            .push_str(&format!("[\"{}\",\"{at}\",{rid}]", kind.as_str()));
        if kind == PingKind::Ignored {
            return;
        }
        let last_at = self.last.map_or(p.at, |(at, _)| at.max(p.at));
        self.last = Some((last_at, kind.as_str()));
        if kind != PingKind::Log {
            self.signal = Some((p.at, kind.as_str()));
        }
        let step = match kind {
            PingKind::Success => {
                self.ok_at = Some(p.at);
                1
            }
            PingKind::Fail => -1,
            PingKind::Start | PingKind::Log | PingKind::Ignored => 0,
        };
        if step != 0 {
            match self.runs.last_mut() {
                Some(run) if run.signum() == step => *run += step,
                _ => self.runs.push(step),
            }
        }
    }
}

/// Per-heartbeat summaries as the statement's array parameters.
#[derive(Default)]
struct SummaryColumns {
    last_at: Vec<Option<DateTime<Utc>>>,
    last_kind: Vec<Option<&'static str>>,
    signal_kind: Vec<Option<&'static str>>,
    signal_at: Vec<Option<DateTime<Utc>>>,
    /// `runs` as an `int4[]` literal (`{2,-1}`) for `heartbeat.fold_signals`;
    /// None when there is no signal.
    runs: Vec<Option<String>>,
    ok_at: Vec<Option<DateTime<Utc>>>,
    /// For the rules that look at single pings (`heartbeat.fold_pings`); None
    /// only in `hb_post`, as it says.
    pings: Vec<Option<String>>,
}

impl SummaryColumns {
    fn push(&mut self, s: Option<Summary>) {
        let Some(mut s) = s.filter(|s| s.last.is_some()) else {
            self.last_at.push(None);
            self.last_kind.push(None);
            self.signal_kind.push(None);
            self.signal_at.push(None);
            self.runs.push(None);
            self.ok_at.push(None);
            self.pings.push(None);
            return;
        };
        self.last_at.push(s.last.map(|l| l.0));
        self.last_kind.push(s.last.map(|l| l.1));
        self.signal_at.push(s.signal.map(|l| l.0));
        self.signal_kind.push(s.signal.map(|l| l.1));
        self.runs.push(runs_literal(&s.runs));
        self.ok_at.push(s.ok_at);
        s.pings.push(']');
        self.pings.push(Some(s.pings));
    }
}

impl<'a> BatchColumns<'a> {
    fn new(pings: &[&'a PingRecord]) -> Self {
        let mut by_token: std::collections::HashMap<&str, usize> = Default::default();
        let mut b = BatchColumns {
            hb_tokens: Vec::new(),
            hb_counts: Vec::new(),
            hb: SummaryColumns::default(),
            hb_ignorable: Vec::new(),
            hb_post: SummaryColumns::default(),
            tokens: Vec::with_capacity(pings.len()),
            ranks: Vec::with_capacity(pings.len()),
            kinds: Vec::with_capacity(pings.len()),
            codes: Vec::with_capacity(pings.len()),
            rids: Vec::with_capacity(pings.len()),
            ats: Vec::with_capacity(pings.len()),
            sources: Vec::with_capacity(pings.len()),
            agents: Vec::with_capacity(pings.len()),
            bodies: Vec::with_capacity(pings.len()),
            schemes: Vec::with_capacity(pings.len()),
            methods: Vec::with_capacity(pings.len()),
        };
        // Per heartbeat: its summary, whether some of its pings are ignorable
        // and whether some are not. Only a heartbeat with both needs the
        // summary under the POST-only rule, made in a second pass.
        let mut sums: Vec<(Summary, bool, bool)> = Vec::new();
        let mut owner: Vec<usize> = Vec::with_capacity(pings.len());
        for p in pings {
            let token = p.token.as_str();
            let h = *by_token.entry(token).or_insert_with(|| {
                b.hb_tokens.push(token);
                b.hb_counts.push(0);
                sums.push((Summary::new(), false, false));
                b.hb_tokens.len() - 1
            });
            owner.push(h);
            let (all, some_ignorable, some_counted) = &mut sums[h];
            if ignorable(p) {
                *some_ignorable = true;
            } else {
                *some_counted = true;
            }
            all.add(p, p.kind);
            b.hb_counts[h] += 1;
            b.tokens.push(token);
            b.ranks.push(b.hb_counts[h]);
            b.kinds.push(p.kind.as_str());
            b.codes.push(p.exit_code);
            b.rids.push(p.rid);
            b.ats.push(p.at);
            b.sources.push(p.source.as_deref());
            b.agents.push(p.user_agent.as_deref());
            b.bodies.push(p.body.as_deref());
            b.schemes.push(p.scheme);
            b.methods.push(p.method);
        }
        let mut post: Vec<Option<Summary>> = sums
            .iter()
            .map(|(_, ignored, counted)| (*ignored && *counted).then(Summary::new))
            .collect();
        if post.iter().any(Option::is_some) {
            for (p, h) in pings.iter().zip(&owner) {
                if let Some(s) = &mut post[*h] {
                    let kind = if ignorable(p) {
                        PingKind::Ignored
                    } else {
                        p.kind
                    };
                    s.add(p, kind);
                }
            }
        }
        for ((all, ignored, _), post) in sums.into_iter().zip(post) {
            b.hb.push(Some(all));
            b.hb_ignorable.push(ignored);
            b.hb_post.push(post);
        }
        b
    }
}

/// `[2, -1]` as the `int4[]` literal `{2,-1}`; None for no signal.
fn runs_literal(runs: &[i32]) -> Option<String> {
    if runs.is_empty() {
        return None;
    }
    let inner: Vec<String> = runs.iter().map(i32::to_string).collect();
    Some(format!("{{{}}}", inner.join(",")))
}

/// The group-commit statement. A finish without a rid is timed from the start
/// pending before this batch, `prev_started_at` (RETURNING sees only new values).
/// A failure, a first success (`pending` → `up`), or a ping to a down or
/// schedule-based heartbeat sets the deadline to the ping's time, handing the
/// status change, its flip and any alert to the deadline loop, which records
/// every change of the stored status; the statement never writes `status`
/// itself (docs/decisions.md §11).
///
/// A success never moves the deadline earlier, so it keeps the stored one: a lower
/// bound the deadline loop re-evaluates and pushes forward when it comes due.
/// Rewriting the indexed `deadline` on every ping would make every ping's update
/// non-HOT (new entries in every index); this way a heartbeat pinged every minute
/// on an hourly period costs the loop one reschedule an hour.
///
/// Streaks (failure and recovery thresholds) are folded in by
/// `heartbeat.fold_pings` (migration 0016) in the same row update: no extra
/// statement. For a heartbeat with no per-ping rule on it is
/// `heartbeat.fold_signals` (migration 0011) over the batch's runs of signals,
/// `$17`; otherwise each ping of `$19` is classified in turn (a success that is
/// `early` or `too_fast` counts as a failure), and each ping's event and reason
/// reach the ring through the row's `batch_events`/`batch_reasons`. A change of
/// `failing` is dated at the heartbeat's last signal in the batch, and a failure
/// already hands the row to the deadline loop, which records the flip; so does
/// any ping to a heartbeat with a run-time or interval rule, whose next
/// deadline only the loop can tell.
///
/// Each ping keeps how it arrived (`$20` scheme, `$21` method), which
/// healthchecks.io's ping JSON shows (`crate::hc::history`).
///
/// healthchecks.io's `methods: "POST"` (`hc_methods`) is applied here, where the
/// heartbeat row is at hand, so it costs no extra round trip: a ping sent with
/// another method is kept in the ring as kind `ign`, counted in `ping_seq`, and
/// changes nothing else (no signal, status, run, deadline or last ping). The
/// daemon does not know which heartbeats have the rule, so it flags each
/// heartbeat with ignorable pings in the batch (`$29`) and, when some of its
/// other pings count, also sends the summary that ignores them (`$22`-`$28`,
/// the same columns as `$3`-`$6`, `$17`-`$19`); the row picks one. A heartbeat
/// all of whose pings are ignored gets nulls there, which change nothing
/// (`fold_pings` reads no ping from a null list, and its events for them are
/// null). The choice is written out as a `CASE` in each place rather than in a
/// subquery: the statement keeps its plan (docs/decisions.md §33 has the
/// measurement).
///
/// History is a ring (`monitor::ring`): ping `seq` lands in slot `seq % $16` and
/// overwrites the ping `$16` before it, in place. Only a burst's newest `$16`
/// pings are written, since one statement cannot write a slot twice.
const WRITE_PINGS: &str = "
WITH hbin AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::timestamptz[], $17::text[], $18::timestamptz[], $19::text[],
                         $22::timestamptz[], $23::text[], $24::text[], $25::timestamptz[],
                         $26::text[], $27::timestamptz[], $28::text[], $29::bool[])
         AS l(token, cnt, last_at, last_kind, kind, at, runs, ok_at, pings,
              p_last_at, p_last_kind, p_kind, p_at, p_runs, p_ok_at, p_pings, ignorable)
),
hb AS (
    UPDATE heartbeat.heartbeat h SET
        ping_seq = h.ping_seq + l.cnt,
        last_ping_at = CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN COALESCE(l.p_last_at, h.last_ping_at)
                            ELSE l.last_at END,
        last_ping_kind = CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN COALESCE(l.p_last_kind, h.last_ping_kind)
                              ELSE l.last_kind END,
        last_signal_at = CASE WHEN (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END) IN ('success', 'fail') THEN CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END
                              ELSE h.last_signal_at END,
        last_signal_failed = CASE CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END WHEN 'success' THEN false WHEN 'fail' THEN true
                                  ELSE h.last_signal_failed END,
        prev_started_at = h.started_at,
        (fail_streak, ok_streak, failing, failing_since, failing_cause, started_at, runs,
         last_success_at, batch_events, batch_reasons) = (
            SELECT f.fail_streak, f.ok_streak, f.failing, f.failing_since, f.failing_cause,
                   f.started_at, f.runs, f.last_success_at, f.events, f.reasons
            FROM heartbeat.fold_pings(h, CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END, CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END,
                                      (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_runs ELSE l.runs END)::int4[],
                                      CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_ok_at ELSE l.ok_at END,
                                      CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_pings ELSE l.pings END) AS f),
        deadline = CASE
            WHEN h.paused OR (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END) IS NULL THEN h.deadline
            WHEN (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END) = 'fail' OR h.status = 'down' OR h.schedule IS NOT NULL
                 OR h.max_runtime_seconds IS NOT NULL OR h.min_runtime_seconds IS NOT NULL
                 OR h.min_interval_seconds IS NOT NULL THEN CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END
            WHEN h.status = 'pending' AND (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END) = 'success' THEN LEAST(h.deadline, CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END)
            WHEN (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_kind ELSE l.kind END) = 'start'
                THEN LEAST(h.deadline, (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END) + make_interval(secs => h.grace_seconds))
            WHEN h.deadline IS NOT NULL
                 AND h.deadline <= (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END) + make_interval(secs => h.period_seconds + h.grace_seconds)
                THEN h.deadline
            ELSE (CASE WHEN h.hc_methods = 'POST' AND l.ignorable THEN l.p_at ELSE l.at END) + make_interval(secs => h.period_seconds + h.grace_seconds)
        END
    FROM hbin l
    WHERE h.token = l.token
    RETURNING h.heartbeat_id, h.token, h.ping_seq, l.cnt, h.prev_started_at, h.batch_events,
              h.batch_reasons, h.hc_methods = 'POST' AS post_only
),
ring AS (
    INSERT INTO heartbeat.ping AS p (heartbeat_id, slot, seq, at, kind, exit_code, rid,
                                     duration_ms, source, user_agent, body, event, reason,
                                     scheme, method)
    SELECT hb.heartbeat_id, (hb.ping_seq - hb.cnt + i.rank) % $16, hb.ping_seq - hb.cnt + i.rank,
           i.at, CASE WHEN hb.post_only AND i.method <> 'POST' THEN 'ign' ELSE i.kind END,
           i.exit_code, i.rid,
           CASE WHEN i.kind IN ('success', 'fail') AND NOT (hb.post_only AND i.method <> 'POST') THEN
               (extract(epoch FROM i.at - CASE WHEN i.rid IS NOT NULL THEN
                   (SELECT s.at FROM heartbeat.ping s
                    WHERE s.heartbeat_id = hb.heartbeat_id AND s.rid = i.rid AND s.kind = 'start'
                    ORDER BY s.seq DESC LIMIT 1)
                ELSE hb.prev_started_at END) * 1000)::bigint
           END,
           i.source, i.user_agent, i.body, hb.batch_events[i.rank], hb.batch_reasons[i.rank],
           i.scheme, i.method
    FROM unnest($7::text[], $8::int8[], $9::text[], $10::int4[], $11::uuid[], $12::timestamptz[],
                $13::text[], $14::text[], $15::text[], $20::text[], $21::text[])
         AS i(token, rank, kind, exit_code, rid, at, source, user_agent, body, scheme, method)
    JOIN hb ON hb.token = i.token
    WHERE i.rank > hb.cnt - $16
    ON CONFLICT (heartbeat_id, slot) DO UPDATE SET
        seq = excluded.seq, at = excluded.at, kind = excluded.kind,
        exit_code = excluded.exit_code, rid = excluded.rid, duration_ms = excluded.duration_ms,
        source = excluded.source, user_agent = excluded.user_agent, body = excluded.body,
        event = excluded.event, reason = excluded.reason, scheme = excluded.scheme,
        method = excluded.method
)
SELECT token, batch_events FROM hb";

/// A ping URL's suffix or `rid` that names no ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PingUrlError {
    #[error("bad suffix: expected start, fail, log or an exit code 0-255")]
    BadSuffix,
    #[error("bad rid: expected a UUID")]
    BadRid,
}

/// Reads `suffix` as the kind of ping: `start`, `fail`, `log` or an exit code
/// 0-255 (leading zeros allowed; 0 is a success). Public for the property tests.
pub fn parse_suffix(suffix: Option<&str>) -> Result<(PingKind, Option<i32>), PingUrlError> {
    match suffix {
        None => Ok((PingKind::Success, None)),
        Some("start") => Ok((PingKind::Start, None)),
        Some("fail") => Ok((PingKind::Fail, None)),
        Some("log") => Ok((PingKind::Log, None)),
        Some(code) if code.bytes().all(|b| b.is_ascii_digit()) => match code.parse::<u8>() {
            Ok(0) => Ok((PingKind::Success, Some(0))),
            Ok(n) => Ok((PingKind::Fail, Some(n.into()))),
            Err(_) => Err(PingUrlError::BadSuffix),
        },
        Some(_) => Err(PingUrlError::BadSuffix),
    }
}

/// The `rid` query parameter, if any; a malformed one is an error. Public for
/// the property tests.
pub fn parse_rid(query: Option<&str>) -> Result<Option<Uuid>, PingUrlError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("rid=") {
            return Uuid::parse_str(value)
                .map(Some)
                .map_err(|_| PingUrlError::BadRid);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_name_the_kind_and_exit_codes_outside_0_255_are_refused() {
        assert_eq!(parse_suffix(None), Ok((PingKind::Success, None)));
        assert_eq!(parse_suffix(Some("0")), Ok((PingKind::Success, Some(0))));
        assert_eq!(parse_suffix(Some("1")), Ok((PingKind::Fail, Some(1))));
        assert_eq!(parse_suffix(Some("255")), Ok((PingKind::Fail, Some(255))));
        assert_eq!(parse_suffix(Some("start")), Ok((PingKind::Start, None)));
        for bad in ["256", "-1", "+1", "x", "1.0"] {
            assert!(parse_suffix(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordering_a_batch_by_token_keeps_each_heartbeats_pings_in_arrival_order() {
        let tokens: Vec<HeartbeatToken> = (0..3).map(|_| HeartbeatToken::generate()).collect();
        let start = Utc::now();
        let mut batch: Vec<Waiting> = (0..200)
            .map(|i| {
                let token = tokens[(i * 7 + i / 3) % 3].clone();
                let at = start + chrono::Duration::milliseconds(i as i64);
                Waiting {
                    ping: PingRecord::new(token, PingKind::Success, at),
                    reply: oneshot::channel().0,
                }
            })
            .collect();
        lock_order(&mut batch);
        for pair in batch.windows(2) {
            let (a, b) = (&pair[0].ping, &pair[1].ping);
            assert!(a.token.as_str() <= b.token.as_str());
            if a.token == b.token {
                assert!(a.at < b.at, "one heartbeat's pings out of arrival order");
            }
        }
    }

    #[test]
    fn a_batch_gives_each_heartbeat_its_signals_as_runs_in_arrival_order() {
        let (a, b) = (HeartbeatToken::generate(), HeartbeatToken::generate());
        let at = Utc::now();
        let kinds = [
            (&a, PingKind::Success),
            (&b, PingKind::Log),
            (&a, PingKind::Success),
            (&a, PingKind::Fail),
            (&a, PingKind::Start),
            (&a, PingKind::Fail),
            (&b, PingKind::Start),
            (&a, PingKind::Success),
        ];
        let pings: Vec<PingRecord> = kinds
            .iter()
            .map(|(t, k)| PingRecord::new((*t).clone(), *k, at))
            .collect();
        let refs: Vec<&PingRecord> = pings.iter().collect();
        let batch = BatchColumns::new(&refs);
        assert_eq!(batch.hb.runs, vec![Some("{2,-2,1}".to_string()), None]);
    }

    #[test]
    fn a_heartbeat_with_ignorable_pings_also_gets_the_summary_that_ignores_them() {
        let (a, b) = (HeartbeatToken::generate(), HeartbeatToken::generate());
        let t0 = Utc::now();
        let sent = |token: &HeartbeatToken, kind, method, secs| PingRecord {
            method,
            ..PingRecord::new(token.clone(), kind, t0 + chrono::Duration::seconds(secs))
        };
        let pings = [
            sent(&a, PingKind::Success, Some("POST"), 0),
            sent(&b, PingKind::Success, Some("POST"), 1),
            sent(&a, PingKind::Fail, Some("GET"), 2),
            sent(&b, PingKind::Start, None, 3),
            sent(&a, PingKind::Start, Some("HEAD"), 4),
        ];
        let refs: Vec<&PingRecord> = pings.iter().collect();
        let batch = BatchColumns::new(&refs);
        // As if every ping counts.
        assert_eq!(
            batch.hb.runs,
            vec![Some("{1,-1}".to_string()), Some("{1}".into())]
        );
        assert_eq!(batch.hb.signal_kind, vec![Some("start"), Some("start")]);
        // `a` under the POST-only rule: only its POST success counts, and its
        // ignored pings keep their ranks in the list of single pings.
        assert_eq!(batch.hb_post.runs, vec![Some("{1}".to_string()), None]);
        assert_eq!(batch.hb_post.signal_kind, vec![Some("success"), None]);
        assert_eq!(batch.hb_post.signal_at, vec![Some(t0), None]);
        assert_eq!(batch.hb_post.last_at, vec![Some(t0), None]);
        let list: serde_json::Value =
            serde_json::from_str(batch.hb_post.pings[0].as_deref().unwrap()).unwrap();
        let kinds: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["success", "ign", "ign"]);
        // `b` has no ignorable ping: the statement takes its usual summary.
        assert_eq!(batch.hb_ignorable, vec![true, false]);
        assert_eq!(batch.hb_post.pings[1], None);
        assert_eq!(
            batch.kinds,
            ["success", "success", "fail", "start", "start"]
        );
    }

    #[test]
    fn a_heartbeat_whose_every_ping_is_ignored_changes_no_signal() {
        let a = HeartbeatToken::generate();
        let at = Utc::now();
        let pings = [PingRecord {
            method: Some("GET"),
            ..PingRecord::new(a, PingKind::Success, at)
        }];
        let refs: Vec<&PingRecord> = pings.iter().collect();
        let batch = BatchColumns::new(&refs);
        assert_eq!(batch.hb_ignorable, vec![true]);
        assert_eq!(batch.hb_post.pings, vec![None]);
        assert_eq!(batch.hb_post.last_at, vec![None]);
        assert_eq!(batch.hb_post.last_kind, vec![None]);
        assert_eq!(batch.hb_post.signal_kind, vec![None]);
        assert_eq!(batch.hb_post.runs, vec![None]);
        assert_eq!(batch.hb_post.ok_at, vec![None]);
        assert_eq!(batch.hb.ok_at, vec![Some(at)]);
    }

    #[test]
    fn a_malformed_rid_is_refused() {
        assert_eq!(parse_rid(None), Ok(None));
        assert!(parse_rid(Some("rid=nope")).is_err());
        let id = Uuid::new_v4();
        assert_eq!(parse_rid(Some(&format!("a=b&rid={id}"))), Ok(Some(id)));
    }
}
