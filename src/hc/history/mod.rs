//! A check's history as healthchecks.io's Management API shows it: its logged
//! pings (`GET checks/<uuid>/pings/`), one ping's body
//! (`GET checks/<uuid>/pings/<n>/body`) and its flips
//! (`GET checks/<uuid|unique_key>/flips/`), read from the monitor's own tables
//! (`heartbeat.ping`, `heartbeat.flip`). Also the project's channels
//! (`GET channels/`). Shapes follow healthchecks.io's `Ping.to_dict`,
//! `Flip.to_dict` and `Channel.to_dict` (healthchecks.io/docs/api/).

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

pub mod routes;

use crate::hc::check::{iso, ApiVersion};
use crate::hc::store::StoreError;

/// One logged ping.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PingJson {
    /// `success`, `start`, `fail` or `log`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it arrived, with microseconds (Python's `isoformat`).
    pub date: String,
    /// Its number among the check's pings, from 1.
    pub n: i64,
    /// `http` or `https`, as the ping arrived (`http` for pings recorded
    /// before Heartbeat kept it, healthchecks.io's default).
    pub scheme: String,
    pub remote_addr: Option<String>,
    /// `GET`, `HEAD` or `POST`; `""` when not known (a ping recorded before
    /// Heartbeat kept it, or one of the daemon's own job heartbeats).
    pub method: String,
    pub ua: String,
    pub rid: Option<Uuid>,
    /// Where its body is read, when it has one.
    pub body_url: Option<String>,
    /// Seconds since its start ping, for a finish with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

/// `GET checks/<uuid>/pings/`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PingList {
    /// Newest first, at most `monitor.pings_kept`.
    pub pings: Vec<PingJson>,
}

/// Python's `datetime.isoformat()` of an aware UTC time: microseconds when
/// there are any, `+00:00`.
fn python_iso(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, false)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Micros, false)
    }
}

const PINGS: &str = "
SELECT seq, at, kind, rid, duration_ms, source, user_agent,
       coalesce(body, '') <> '', coalesce(scheme, 'http'), coalesce(method, '')
FROM heartbeat.ping WHERE heartbeat_id = $1 ORDER BY seq DESC LIMIT $2";

/// Where a check's ping bodies are read.
pub struct BodyUrls<'a> {
    /// `http://host:port`.
    pub base: &'a str,
    pub version: ApiVersion,
    pub uuid: Uuid,
}

/// The check's `limit` most recent pings, newest first.
pub async fn pings(
    pool: &Pool,
    heartbeat_id: Uuid,
    limit: i64,
    urls: &BodyUrls<'_>,
) -> Result<PingList, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(PINGS, &[&heartbeat_id, &limit]).await?;
    let pings = rows
        .iter()
        .map(|r| {
            let n: i64 = r.get(0);
            let has_body: bool = r.get(7);
            let duration_ms: Option<i64> = r.get(4);
            PingJson {
                kind: r.get(2),
                date: python_iso(r.get(1)),
                n,
                scheme: r.get(8),
                remote_addr: r.get(5),
                method: r.get(9),
                ua: r.get::<_, Option<String>>(6).unwrap_or_default(),
                rid: r.get(3),
                body_url: has_body.then(|| {
                    format!(
                        "{}/api/{}/checks/{}/pings/{n}/body",
                        urls.base,
                        urls.version.as_str(),
                        urls.uuid
                    )
                }),
                duration: duration_ms.map(|ms| ms as f64 / 1000.0),
            }
        })
        .collect();
    Ok(PingList { pings })
}

/// The body of the check's ping number `n`; None when that ping is no longer
/// kept or has no body (healthchecks.io answers 404 for both).
pub async fn ping_body(
    pool: &Pool,
    heartbeat_id: Uuid,
    n: i64,
) -> Result<Option<String>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT body FROM heartbeat.ping WHERE heartbeat_id = $1 AND seq = $2",
            &[&heartbeat_id, &n],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .filter(|b| !b.is_empty()))
}

/// One flip: when the check went up (`up: 1`) or down (`up: 0`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlipJson {
    pub timestamp: String,
    pub up: u8,
}

/// `GET checks/<uuid|unique_key>/flips/`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlipList {
    /// Newest first.
    pub flips: Vec<FlipJson>,
}

/// The query of a flips request, as healthchecks.io's `FlipsFiltersForm`
/// reads it: `start` and `end` are UNIX timestamps from 0 to 10000000000,
/// `seconds` 0 to 31536000 (0 filters nothing). An empty value is absent; of a
/// repeated one the last counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlipFilter {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub seconds: Option<i64>,
}

/// A query parameter out of its bounds or not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query parameter: {0}")]
pub struct FilterError(pub String);

impl FlipFilter {
    pub fn parse(query: &[(String, String)]) -> Result<Self, FilterError> {
        let last = |key: &str| {
            query
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let int = |key: &str, max: i64| -> Result<Option<i64>, FilterError> {
            let Some(v) = last(key) else {
                return Ok(None);
            };
            match v.parse::<i64>() {
                Ok(n) if (0..=max).contains(&n) => Ok(Some(n)),
                _ => Err(FilterError(format!(
                    "{key} must be an integer from 0 to {max}"
                ))),
            }
        };
        let at = |secs: Option<i64>| secs.and_then(|s| Utc.timestamp_opt(s, 0).single());
        Ok(Self {
            start: at(int("start", 10_000_000_000)?),
            end: at(int("end", 10_000_000_000)?),
            seconds: int("seconds", 31_536_000)?.filter(|s| *s > 0),
        })
    }
}

/// Only transitions into `up` or `down` are flips in healthchecks.io's sense;
/// the monitor may record others (into `paused`, `pending`), which are left out.
const FLIPS: &str = "
SELECT at, to_status = 'up' FROM heartbeat.flip
WHERE heartbeat_id = $1 AND to_status IN ('up', 'down')
  AND ($2::timestamptz IS NULL OR at >= $2)
  AND ($3::timestamptz IS NULL OR at < $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
ORDER BY flip_id DESC";

/// The check's flips that `filter` keeps, as of `now`, newest first.
pub async fn flips(
    pool: &Pool,
    heartbeat_id: Uuid,
    filter: &FlipFilter,
    now: DateTime<Utc>,
) -> Result<FlipList, StoreError> {
    let client = pool.get().await?;
    let since = filter.seconds.map(|s| now - Duration::seconds(s));
    let rows = client
        .query(FLIPS, &[&heartbeat_id, &filter.start, &filter.end, &since])
        .await?;
    let flips = rows
        .iter()
        .map(|r| FlipJson {
            timestamp: iso(r.get(0)),
            up: u8::from(r.get::<_, bool>(1)),
        })
        .collect();
    Ok(FlipList { flips })
}

/// One of the project's notification channels.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelJson {
    pub id: Uuid,
    pub name: String,
    /// Heartbeat's channel kind (`webhook`, `http`, `email`, a preset name).
    pub kind: String,
}

/// `GET channels/`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelJson>,
}

/// The project's channels, oldest first.
pub async fn channels(pool: &Pool, project_id: Uuid) -> Result<ChannelList, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT channel_id, name, kind FROM heartbeat.channel
             WHERE project_id = $1 ORDER BY created_at, channel_id",
            &[&project_id],
        )
        .await?;
    let channels = rows
        .iter()
        .map(|r| ChannelJson {
            id: r.get(0),
            name: r.get(1),
            kind: r.get(2),
        })
        .collect();
    Ok(ChannelList { channels })
}

/// Whether the database answers (`GET status/`).
pub async fn database_answers(pool: &Pool) -> bool {
    match pool.get().await {
        Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flip_filters_are_read_as_healthchecks_io_reads_them() {
        assert_eq!(FlipFilter::parse(&[]).unwrap(), FlipFilter::default());
        let f = FlipFilter::parse(&q(&[("start", "1592214380"), ("end", "1592217980")])).unwrap();
        assert_eq!(f.start.unwrap().timestamp(), 1_592_214_380);
        assert_eq!(f.end.unwrap().timestamp(), 1_592_217_980);
        // 0 seconds filters nothing; an empty value is absent; the last one counts.
        assert_eq!(
            FlipFilter::parse(&q(&[("seconds", "0")])).unwrap().seconds,
            None
        );
        assert_eq!(FlipFilter::parse(&q(&[("start", "")])).unwrap().start, None);
        assert_eq!(
            FlipFilter::parse(&q(&[("seconds", "5"), ("seconds", "60")]))
                .unwrap()
                .seconds,
            Some(60)
        );
        for bad in [
            ("seconds", "-1"),
            ("seconds", "31536001"),
            ("seconds", "x"),
            ("start", "-5"),
            ("start", "10000000001"),
            ("end", "1.5"),
        ] {
            assert!(FlipFilter::parse(&q(&[bad])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ping_dates_are_python_isoformat() {
        let t = Utc.with_ymd_and_hms(2020, 6, 9, 14, 51, 6).unwrap();
        assert_eq!(python_iso(t), "2020-06-09T14:51:06+00:00");
        let t = t + Duration::microseconds(113_073);
        assert_eq!(python_iso(t), "2020-06-09T14:51:06.113073+00:00");
    }
}
