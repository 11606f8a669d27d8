//! Property tests (proptest) of the parsers that read untrusted text: the cron
//! parser, the metric and audit-cut definition-file headers, the ping path
//! suffix and `rid` query, and the two window parsers (the schedule's catch-up
//! window and the audit cut windows).
//!
//! Each parser has three kinds of property: it never panics on arbitrary input;
//! inputs built from its grammar are accepted (and round-trip, or mean what they
//! say); inputs from known-invalid classes are rejected. The case count is
//! proptest's default, 256 per property, so the normal test run stays quick;
//! `PROPTEST_CASES` raises it (`bench/fuzz.sh`, results in docs/reliability.md).
//! A failure prints the shrunk input and is saved under
//! `tests/proptest-regressions/`, which replays it first on the next run.

use std::path::Path;

use chrono::{Duration, TimeZone, Timelike, Utc};
use heartbeat::audit::cut_file::{CutFile, CutWindow};
use heartbeat::monitor::ping::{parse_rid, parse_suffix, PingKind};
use heartbeat::refresh::definitions;
use heartbeat::schedule::cron::CronSchedule;
use heartbeat::schedule::table::{format_window, parse_window};
use proptest::prelude::*;
use proptest::sample::select;

/// Text from the characters parsers split on, plus junk: controls, multi-byte,
/// a bidi override, long digit runs.
fn junk() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            select(vec![
                "*", "/", ",", "-", " ", "\t", "\n", "\r\n", ":", "=", "&", "@", "?", "L", "W",
                "#", "%", "\0", "é", "💓", "\u{202e}", "--", "h", "d", "w", "s", "m",
            ])
            .prop_map(str::to_string),
            "[0-9]{1,25}",
            "[a-zA-Z_]{1,8}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Arbitrary text: fully random, or built from meaningful pieces.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), junk()]
}

// ---------------------------------------------------------------- cron

/// One valid item of a field with values `min..=max`: a value, a range, a
/// stepped range or a stepped `*`.
fn cron_item(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        (min..=max).prop_map(|v| v.to_string()),
        (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (min..=max, min..=max, 1..=max + 1).prop_map(|(a, b, s)| format!(
            "{}-{}/{s}",
            a.min(b),
            a.max(b)
        )),
        (1..=max + 1).prop_map(|s| format!("*/{s}")),
        Just("*".to_string()),
    ]
}

fn cron_field(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop::collection::vec(cron_item(min, max), 1..4).prop_map(|items| items.join(","))
}

/// A valid five-field expression, with names for some months and weekdays, or
/// one of the macros.
fn valid_cron() -> impl Strategy<Value = String> {
    let month = prop_oneof![
        cron_field(1, 12),
        select(vec!["JAN", "feb", "Mar-Jun", "OCT,dec"]).prop_map(str::to_string),
    ];
    let weekday = prop_oneof![
        cron_field(0, 7),
        select(vec!["MON", "sun", "MON-FRI", "sat,SUN"]).prop_map(str::to_string),
    ];
    prop_oneof![
        // Days up to 28: `31 feb` with an unrestricted weekday never fires, and
        // the parser refuses it (a known-invalid case below).
        9 => (cron_field(0, 59), cron_field(0, 23), cron_field(1, 28), month, weekday)
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
        1 => select(vec!["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@HOURLY"])
            .prop_map(str::to_string),
    ]
}

proptest! {
    #[test]
    fn the_cron_parser_never_panics_on_any_text(s in text()) {
        if let Ok(schedule) = CronSchedule::parse(&s) {
            // Whatever it accepts can be evaluated without panicking either.
            let from = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
            let _ = schedule.next_after(&from);
        }
    }

    #[test]
    fn every_valid_cron_expression_is_accepted_and_round_trips(
        s in valid_cron(),
        offset_minutes in 0i64..(400 * 24 * 60),
    ) {
        let schedule = CronSchedule::parse(&s)
            .map_err(|e| TestCaseError::fail(format!("{s:?} refused: {e}")))?;
        let again = CronSchedule::parse(&schedule.to_string()).unwrap();
        prop_assert_eq!(&again, &schedule);
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + Duration::minutes(offset_minutes);
        let next = schedule.next_after(&from);
        prop_assert_eq!(next, again.next_after(&from));
        if let Some(next) = next {
            prop_assert!(next > from, "{s:?}: {next} is not after {from}");
        }
    }

    #[test]
    fn explicit_minutes_and_hours_are_exactly_when_it_fires(
        minutes in prop::collection::btree_set(0u32..60, 1..5),
        hours in prop::collection::btree_set(0u32..24, 1..4),
        offset_minutes in 0i64..(60 * 24 * 60),
    ) {
        let list = |set: &std::collections::BTreeSet<u32>| {
            set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        };
        let s = format!("{} {} * * *", list(&minutes), list(&hours));
        let schedule = CronSchedule::parse(&s).unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + Duration::minutes(offset_minutes);
        let next = schedule.next_after(&from).expect("fires daily");
        prop_assert!(minutes.contains(&next.minute()), "{s:?} fired at {next}");
        prop_assert!(hours.contains(&next.hour()), "{s:?} fired at {next}");
        prop_assert!(next > from && next - from <= Duration::days(1), "{s:?}: {from} -> {next}");
    }

    #[test]
    fn cron_expressions_out_of_range_or_misshapen_are_rejected(
        case in prop_oneof![
            // A value past its field's range.
            (0usize..5, 0u32..1000, any::<bool>()).prop_map(|(field, v, below)| {
                let (min, max) = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)][field];
                // Below the range exists only where it starts at 1 (a day or month 0).
                let bad = if below && min == 1 { 0 } else { max + 1 + v };
                let mut f = vec!["*".to_string(); 5];
                f[field] = bad.to_string();
                f.join(" ")
            }),
            // Too few or too many fields.
            prop_oneof![1usize..5, 6usize..9].prop_map(|n| vec!["*"; n].join(" ")),
            // A step of zero, a backwards range, a step from a single value.
            Just("*/0 * * * *".to_string()),
            (1u32..59).prop_map(|a| format!("{a}-{} * * * *", a - 1)),
            (0u32..59, 1u32..10).prop_map(|(a, s)| format!("{a}/{s} * * * *")),
            // Quartz and croner extensions Vixie cron does not have.
            // A day that never occurs in the only month allowed.
            select(vec!["0 0 30 feb *", "0 0 31 4 *", "0 0 31 2,4,6 *"]).prop_map(str::to_string),
            select(vec!["0 0 L * *", "0 0 1W * *", "0 0 * * 5#2", "0 0 ? * *", "0 0 0 * * *", "@reboot", "@every"])
                .prop_map(str::to_string),
            // An empty list item.
            Just("1,,2 * * * *".to_string()),
        ]
    ) {
        prop_assert!(CronSchedule::parse(&case).is_err(), "{case:?} was accepted");
    }
}

// ------------------------------------------------------- definition files

/// A header value: printable, no line break, not blank.
fn header_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ,.:()'%/-]{0,40}".prop_map(|s| s.trim().to_string())
}

fn metric_stem() -> impl Strategy<Value = String> {
    "[a-z0-9_]{1,64}"
}

proptest! {
    #[test]
    fn the_definition_header_parsers_never_panic_on_any_text(
        stem in prop_oneof![metric_stem(), text()],
        lines in prop::collection::vec(
            prop_oneof![
                text(),
                (select(vec!["title", "kind", "grain", "description", "windows", "", "TITLE"]), text())
                    .prop_map(|(k, v)| format!("-- {k}: {v}")),
            ],
            0..8,
        ),
        newline in select(vec!["\n", "\r\n", "\n\n"]),
    ) {
        let body = lines.join(newline);
        let _ = definitions::parse(Path::new(&format!("{stem}.sql")), &body);
        let _ = CutFile::parse(&stem, &body);
    }

    #[test]
    fn a_well_formed_metric_file_parses_to_what_its_header_says(
        stem in metric_stem(),
        title in header_value(),
        kind in select(vec!["counter", "gauge", "ratio", "rolling_stat"]),
        grain in select(vec!["hour", "day"]),
        description in header_value(),
        newline in select(vec!["\n", "\r\n"]),
        semicolon in any::<bool>(),
    ) {
        let query = "SELECT b.bucket, 1::float8 AS value\nFROM generate_series($1, $2, interval '1 hour') b(bucket)";
        let text = [
            format!("-- title: {title}"),
            format!("-- kind: {kind}"),
            "-- a plain comment line".to_string(),
            format!("-- grain: {grain}"),
            format!("-- description: {description}"),
            format!("{query}{}", if semicolon { ";" } else { "" }),
        ]
        .join(newline);
        let def = definitions::parse(Path::new(&format!("{stem}.sql")), &text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))?;
        prop_assert_eq!(def.id.as_str(), stem.as_str());
        prop_assert_eq!(&def.title, &title);
        prop_assert_eq!(def.kind.as_str(), kind);
        prop_assert_eq!(def.grain.as_str(), grain);
        prop_assert_eq!(&def.description, &description);
        prop_assert_eq!(def.query.replace('\r', ""), query);
        prop_assert_eq!(def.query_line, 6);
    }

    #[test]
    fn a_metric_file_missing_a_header_or_with_a_bad_value_is_rejected(
        stem in metric_stem(),
        fault in 0usize..7,
        junk_value in "[a-z]{1,10}",
    ) {
        let mut header = vec![
            "-- title: Orders".to_string(),
            "-- kind: counter".to_string(),
            "-- grain: hour".to_string(),
        ];
        match fault {
            0..=2 => {
                header.remove(fault);
            }
            3 => header[1] = format!("-- kind: {junk_value}x"),
            4 => header[2] = format!("-- grain: {junk_value}x"),
            // An unknown key (a prefix keeps it from being a real one).
            5 => header.push(format!("-- x{junk_value}: something")),
            _ => {}
        }
        let query = if fault == 6 { "" } else { "SELECT 1" };
        let text = format!("{}\n{query}", header.join("\n"));
        let parsed = definitions::parse(Path::new(&format!("{stem}.sql")), &text);
        prop_assert!(parsed.is_err(), "{text:?} was accepted");
    }

    #[test]
    fn a_well_formed_cut_file_parses_to_what_its_header_says(
        stem in "[a-z][a-z0-9_]{0,30}",
        title in header_value(),
        description in prop::collection::vec(header_value(), 0..3),
        windows in prop::collection::vec((1u32..=500, select(vec!['h', 'd', 'w'])), 1..5),
    ) {
        let labels: Vec<String> = windows.iter().map(|(n, u)| format!("{n}{u}")).collect();
        let mut lines = vec![format!("-- title: {title}")];
        lines.extend(description.iter().map(|d| format!("-- description: {d}")));
        lines.push(format!("-- windows: {}", labels.join(", ")));
        lines.push("SELECT client_id, count(*) FROM heartbeat.event GROUP BY 1;".into());
        let text = lines.join("\n");
        let cut = CutFile::parse(&stem, &text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))?;
        prop_assert_eq!(&cut.title, &title);
        prop_assert_eq!(&cut.description, &description.join(" "));
        let mut want: Vec<String> = Vec::new();
        for l in labels {
            if !want.contains(&l) {
                want.push(l);
            }
        }
        prop_assert_eq!(cut.window_labels(), want);
        prop_assert!(!cut.query.ends_with(';'));
    }

    #[test]
    fn a_cut_file_with_an_unknown_key_or_no_windows_is_rejected(
        key in "[a-z]{1,12}".prop_filter("a real key", |k| !["title", "description", "windows"].contains(&k.as_str())),
        drop_windows in any::<bool>(),
    ) {
        let text = if drop_windows {
            "-- title: T\nSELECT 1".to_string()
        } else {
            format!("-- title: T\n-- windows: 7d\n-- {key}: x\nSELECT 1")
        };
        prop_assert!(CutFile::parse("a_cut", &text).is_err(), "{text:?} was accepted");
    }
}

// ------------------------------------------------------------ ping suffix

proptest! {
    #[test]
    fn the_ping_suffix_and_rid_parsers_never_panic_on_any_text(
        suffix in text(),
        query in text(),
    ) {
        let _ = parse_suffix(Some(&suffix));
        let _ = parse_rid(Some(&query));
    }

    #[test]
    fn every_exit_code_0_to_255_is_accepted_with_its_meaning(
        code in 0u32..=255,
        zeros in 0usize..4,
    ) {
        let text = format!("{}{code}", "0".repeat(zeros));
        let (kind, exit) = parse_suffix(Some(&text))
            .map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))?;
        prop_assert_eq!(exit, Some(code as i32));
        prop_assert_eq!(kind, if code == 0 { PingKind::Success } else { PingKind::Fail });
    }

    #[test]
    fn exit_codes_past_255_and_unknown_words_are_rejected(
        bad in prop_oneof![
            (256u64..u64::MAX).prop_map(|n| n.to_string()),
            "[0-9]{4,40}".prop_filter("small", |s| s.parse::<u32>().map_or(true, |n| n > 255)),
            "-[0-9]{1,3}",
            "[a-zA-Z]{1,10}".prop_filter("a keyword", |s| !["start", "fail", "log"].contains(&s.as_str())),
            select(vec!["", " 0", "0 ", "+1", "1.0", "START", "fail/", "0x1"]).prop_map(str::to_string),
        ]
    ) {
        prop_assert!(parse_suffix(Some(&bad)).is_err(), "{bad:?} was accepted");
    }

    #[test]
    fn a_rid_among_other_parameters_is_found_and_a_malformed_one_rejected(
        rid in any::<u128>().prop_map(uuid::Uuid::from_u128),
        before in prop::collection::vec("[a-qs-z][a-z]{0,5}=[a-z0-9]{0,8}", 0..3),
        after in prop::collection::vec("[a-z]{1,6}=[a-z0-9]{0,8}", 0..3),
        bad in "[a-z0-9-]{0,40}".prop_filter("a uuid", |s| uuid::Uuid::parse_str(s).is_err()),
    ) {
        let mut pairs = before.clone();
        pairs.push(format!("rid={rid}"));
        pairs.extend(after.iter().cloned());
        prop_assert_eq!(parse_rid(Some(&pairs.join("&"))), Ok(Some(rid)));
        prop_assert_eq!(parse_rid(Some(&before.join("&"))), Ok(None));
        let mut bad_pairs = before;
        bad_pairs.push(format!("rid={bad}"));
        prop_assert!(parse_rid(Some(&bad_pairs.join("&"))).is_err());
    }
}

// --------------------------------------------------------------- windows

proptest! {
    #[test]
    fn the_window_parsers_never_panic_on_any_text(
        s in prop_oneof![
            text(),
            ("[0-9]{1,30}", select(vec!["s", "m", "h", "d", "w", ""])).prop_map(|(n, u)| format!("{n}{u}")),
        ]
    ) {
        if let Ok(d) = parse_window(&s) {
            prop_assert!(d >= Duration::zero(), "{s:?} -> {d}");
        }
        if let Ok(w) = s.parse::<CutWindow>() {
            prop_assert!(w.duration() > Duration::zero(), "{s:?}");
            prop_assert!(w.duration() <= Duration::days(10 * 366), "{s:?}");
        }
    }

    #[test]
    fn every_catch_up_window_is_accepted_and_round_trips(
        n in 0i64..=100_000,
        unit in select(vec![("s", 1i64), ("m", 60), ("h", 3600), ("d", 86_400)]),
    ) {
        let text = format!("{n}{}", unit.0);
        let d = parse_window(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))?;
        prop_assert_eq!(d, Duration::seconds(n * unit.1));
        let shown = format_window(d);
        prop_assert_eq!(parse_window(&shown), Ok(d), "{} displayed as {}", text, shown);
    }

    #[test]
    fn every_cut_window_up_to_ten_years_is_accepted_with_a_canonical_label(
        n in 1u32..=3660,
        unit in select(vec![('h', 1i64), ('d', 24), ('w', 168)]),
    ) {
        let hours = i64::from(n) * unit.1;
        let text = format!("{n}{}", unit.0);
        let parsed = text.parse::<CutWindow>();
        if hours <= 10 * 366 * 24 {
            let w = parsed.map_err(|e| TestCaseError::fail(format!("{text:?} refused: {e}")))?;
            prop_assert_eq!(w.duration(), Duration::hours(hours));
            prop_assert_eq!(w.label(), text);
        } else {
            prop_assert!(parsed.is_err(), "{text:?} is past ten years");
        }
    }

    #[test]
    fn negative_unitless_zero_padded_and_unknown_unit_windows_are_rejected(
        n in 1u32..10_000,
        unit in select(vec!["x", "hh", " h", "y", "ms", "H"]),
    ) {
        let (negative, unitless, odd_unit) = (format!("-{n}h"), n.to_string(), format!("{n}{unit}"));
        for text in [&negative, &unitless, &odd_unit] {
            prop_assert!(parse_window(text).is_err(), "catch-up window {:?} accepted", text);
        }
        let (negative, padded) = (format!("-{n}d"), format!("0{n}d"));
        for text in [&negative, &padded, &odd_unit, &"0h".to_string()] {
            prop_assert!(text.parse::<CutWindow>().is_err(), "cut window {:?} accepted", text);
        }
    }
}
