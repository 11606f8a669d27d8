//! Randomised properties of the parsers that read untrusted text: the cron parser,
//! the metric and cut file headers, the window parser and the ping suffix. A small
//! generator (no extra dependency) mixes well-formed pieces with junk; every parser
//! must return, never panic. `HEARTBEAT_FUZZ_CASES` raises the case count
//! (`bench/fuzz.sh`); the seed is printed so a failure can be replayed with
//! `HEARTBEAT_FUZZ_SEED`.

use std::path::Path;

use chrono::{TimeZone, Utc};
use heartbeat::audit::cut_file::CutFile;
use heartbeat::schedule::cron::CronSchedule;
use heartbeat::schedule::table::parse_window;

struct Gen(u64);

impl Gen {
    fn from_env() -> Gen {
        let seed = std::env::var("HEARTBEAT_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("fuzz seed {seed} (HEARTBEAT_FUZZ_SEED)");
        Gen(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    /// Junk: printable, control, multi-byte and separator characters.
    fn junk(&mut self, max: u64) -> String {
        let alphabet = [
            "a",
            "Z",
            "0",
            "9",
            "*",
            "/",
            ",",
            "-",
            " ",
            "\t",
            "\n",
            "?",
            "L",
            "W",
            "#",
            "@",
            "%",
            "'",
            ";",
            "\0",
            "é",
            "💓",
            "\u{202e}",
            ":",
            "=",
            "999999999999",
            "-1",
        ];
        (0..self.below(max + 1))
            .map(|_| self.pick(&alphabet))
            .collect()
    }
    fn cron_field(&mut self) -> String {
        let n = |g: &mut Gen| (g.below(70) as i64 - 5).to_string();
        match self.below(9) {
            0 => "*".into(),
            1 => n(self),
            2 => format!("*/{}", n(self)),
            3 => format!("{}-{}", n(self), n(self)),
            4 => format!("{},{}", n(self), n(self)),
            5 => format!("{}-{}/{}", n(self), n(self), n(self)),
            6 => self
                .pick(&["MON", "sun", "JAN", "dec", "FRI-MON", "?", "L"])
                .into(),
            7 => self.junk(4),
            _ => "".into(),
        }
    }
    fn cron(&mut self) -> String {
        if self.below(10) == 0 {
            return self
                .pick(&["@daily", "@hourly", "@weekly", "@yearly", "@reboot", "@"])
                .into();
        }
        let fields = 4 + self.below(4);
        (0..fields)
            .map(|_| self.cron_field())
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn window(&mut self) -> String {
        let num = self.pick(&[
            "0",
            "1",
            "90",
            "-3",
            "18446744073709551616",
            "9999999999",
            "",
        ]);
        let unit = self.pick(&["s", "m", "h", "d", "w", "", "x", "hh", " h"]);
        if self.below(5) == 0 {
            self.junk(8)
        } else {
            format!("{num}{unit}")
        }
    }
    fn header_line(&mut self) -> String {
        let key = self.pick(&[
            "title",
            "kind",
            "grain",
            "description",
            "windows",
            "unit",
            "",
            "TITLE",
            "kind ",
        ]);
        let value = match key {
            "kind" => self
                .pick(&["counter", "rolling_stat", "ratio", "", "nope"])
                .to_string(),
            "grain" => self
                .pick(&["hour", "day", "week", "minute", ""])
                .to_string(),
            "windows" => (0..self.below(4))
                .map(|_| self.window())
                .collect::<Vec<_>>()
                .join(", "),
            _ => self.junk(10),
        };
        match self.below(6) {
            0 => format!("--{key}:{value}"),
            1 => format!("-- {key} {value}"),
            2 => self.junk(12),
            _ => format!("-- {key}: {value}"),
        }
    }
    fn definition(&mut self) -> String {
        let mut text: Vec<String> = (0..self.below(6)).map(|_| self.header_line()).collect();
        text.push(
            self.pick(&[
                "SELECT 1",
                "",
                "SELECT b.bucket, 1::float8 AS value FROM generate_series($1, $2, interval '1 hour') b(bucket)",
                "; DROP TABLE x",
                "-- only a comment",
            ])
            .into(),
        );
        text.join(self.pick(&["\n", "\r\n", "\n\n"]))
    }
}

fn cases(default: u64) -> u64 {
    std::env::var("HEARTBEAT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_cron_parser_never_panics_and_what_it_accepts_round_trips() {
    let mut g = Gen::from_env();
    let from = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
    let mut accepted = 0;
    for _ in 0..cases(3000) {
        let text = g.cron();
        if let Ok(schedule) = CronSchedule::parse(&text) {
            accepted += 1;
            let again = CronSchedule::parse(&schedule.to_string())
                .unwrap_or_else(|e| panic!("{text:?} displays as something unparsable: {e}"));
            assert_eq!(again.to_string(), schedule.to_string(), "{text:?}");
            assert_eq!(
                again.next_after(&from),
                schedule.next_after(&from),
                "{text:?} fires differently after a round trip"
            );
        }
    }
    assert!(accepted > 0, "the generator produced no valid expression");
}

#[test]
fn the_window_parser_never_panics_and_accepts_only_non_negative_windows() {
    let mut g = Gen::from_env();
    for _ in 0..cases(3000) {
        let text = g.window();
        if let Ok(d) = parse_window(&text) {
            assert!(d >= chrono::Duration::zero(), "{text:?} -> {d}");
        }
    }
}

#[test]
fn the_metric_and_cut_header_parsers_never_panic() {
    let mut g = Gen::from_env();
    for _ in 0..cases(3000) {
        let text = g.definition();
        let stem = g.pick(&["orders", "a_b", "../x", "", "UPPER", "💓", "a.b"]);
        let _ = heartbeat::refresh::definitions::parse(Path::new(&format!("{stem}.sql")), &text);
        let _ = CutFile::parse(stem, &text);
    }
}

/// The ping suffix parser is private to the ping route, so it is driven over HTTP
/// with an unknown token: any suffix is a 4xx, never a 5xx.
#[tokio::test]
async fn any_ping_suffix_is_answered_without_a_server_error() {
    let app = crate::helpers::spawn_app().await;
    let mut g = Gen::from_env();
    for _ in 0..cases(300).min(5000) {
        let suffix = match g.below(4) {
            0 => g
                .pick(&[
                    "start",
                    "fail",
                    "log",
                    "0",
                    "255",
                    "256",
                    "-1",
                    "00000000001",
                ])
                .into(),
            1 => g.below(1_000_000).to_string(),
            2 => "9".repeat(1 + g.below(40) as usize),
            _ => g.junk(6),
        };
        let path: String = url_escape(&suffix);
        let r = app
            .client
            .post(app.url(&format!("/hb/no-such-token/{path}")))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error(),
            "/hb/no-such-token/{suffix:?} -> {}",
            r.status()
        );
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
