//! Cron: five fields, names, `7` = Sunday, Vixie day OR, leap days, DST gaps and overlaps.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tesseract_ci::trigger::cron::Cron;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn next(cron: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
    Cron::parse(cron)
        .expect("valid cron")
        .upcoming(at(from), tz, n)
        .iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn next_fire_times() {
    let utc = chrono_tz::UTC;
    let table: &[(&str, Tz, &str, &[&str])] = &[
        // Every 15 minutes on weekdays 9-17; 2026-11-27 is a Friday.
        (
            "*/15 9-17 * * 1-5",
            utc,
            "2026-11-27T17:40:00Z",
            &["2026-11-27T17:45:00Z", "2026-11-30T09:00:00Z"],
        ),
        // Vixie: day-of-month 13 OR Friday (2026-11-01 is a Sunday).
        (
            "0 0 13 * 5",
            utc,
            "2026-11-01T00:00:00Z",
            &[
                "2026-11-06T00:00:00Z",
                "2026-11-13T00:00:00Z",
                "2026-11-20T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z",
            ],
        ),
        // A day-of-month starting with `*` means AND: odd days that are Mondays.
        (
            "0 0 */2 * 1",
            utc,
            "2026-11-01T00:00:00Z",
            &[
                "2026-11-09T00:00:00Z",
                "2026-11-23T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ],
        ),
        // Feb 29 only exists in leap years.
        (
            "0 0 29 2 *",
            utc,
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        // 7 is Sunday; 2026-11-26 is a Thursday.
        (
            "0 12 * * 7",
            utc,
            "2026-11-26T00:00:00Z",
            &["2026-11-29T12:00:00Z"],
        ),
        (
            "0 12 * * SUN",
            utc,
            "2026-11-26T00:00:00Z",
            &["2026-11-29T12:00:00Z"],
        ),
        // Names are case-insensitive, in lists and ranges.
        (
            "0 9 1 jan,JUL *",
            utc,
            "2026-02-01T00:00:00Z",
            &["2026-07-01T09:00:00Z", "2027-01-01T09:00:00Z"],
        ),
        (
            "30 8 * * mon-FRI",
            utc,
            "2026-11-28T00:00:00Z",
            &["2026-11-30T08:30:00Z"],
        ),
        // `a/step` runs from a to the end of the range.
        (
            "50/5 0 1 1 *",
            utc,
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:50:00Z",
                "2026-01-01T00:55:00Z",
                "2027-01-01T00:50:00Z",
            ],
        ),
        // Time zones: 09:00 in Berlin is 08:00Z in winter, 07:00Z in summer.
        (
            "0 9 * * *",
            "Europe/Berlin".parse().expect("tz"),
            "2026-03-28T00:00:00Z",
            &["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"],
        ),
        // Spring forward (New York, 2026-03-08 02:00 → 03:00): 02:30 runs once at 03:00 EDT.
        (
            "30 2 * * *",
            "America/New_York".parse().expect("tz"),
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        // Two slots inside the gap still run once.
        (
            "15,45 2 * * *",
            "America/New_York".parse().expect("tz"),
            "2026-03-08T00:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z"],
        ),
        // Fall back (New York, 2026-11-01 02:00 → 01:00): 01:30 happens twice, runs once.
        (
            "30 1 * * *",
            "America/New_York".parse().expect("tz"),
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
    ];
    for (cron, tz, from, expected) in table {
        assert_eq!(
            next(cron, *tz, from, expected.len()),
            *expected,
            "{cron} in {tz} from {from}"
        );
    }
}

#[test]
fn invalid_crons_say_which_field_and_why() {
    let table = [
        (
            "60 * * * *",
            0,
            "minute field `60`: 60 is out of range 0-59",
        ),
        ("* 24 * * *", 2, "hour field `24`: 24 is out of range 0-23"),
        (
            "* * 0 * *",
            4,
            "day-of-month field `0`: 0 is out of range 1-31",
        ),
        ("* * * 13 *", 6, "month field `13`: 13 is out of range 1-12"),
        (
            "* * * * 8",
            8,
            "day-of-week field `8`: 8 is out of range 0-7",
        ),
        (
            "* * * FOO *",
            6,
            "month field `FOO`: `FOO` is not a number or a name",
        ),
        ("*/0 * * * *", 2, "step must be at least 1"),
        ("5-1 * * * *", 0, "range 5-1 is backwards"),
        ("* * * *", 0, "expected 5 fields"),
        ("0 * * * * *", 0, "expected 5 fields"),
        ("@daily", 0, "macros such as `@daily` are not supported"),
        ("1,,2 * * * *", 2, "empty list item"),
    ];
    for (cron, offset, message) in table {
        let e = Cron::parse(cron).expect_err(cron);
        assert!(e.message.contains(message), "{cron}: {}", e.message);
        assert_eq!(e.offset, offset, "{cron}: {e:?}");
    }
}

#[test]
fn matches_agrees_with_next_after() {
    let cron = Cron::parse("*/7 3,15 1-10 * 2").expect("valid");
    let mut t = at("2026-01-01T00:00:00Z");
    for _ in 0..50 {
        let n = cron.next_after(t, chrono_tz::UTC).expect("next");
        assert!(cron.matches(n.naive_utc()), "{n} should match");
        // No matching minute lies strictly between t and n.
        let mut probe = t + chrono::Duration::minutes(1);
        while probe < n {
            assert!(
                !cron.matches(probe.naive_utc()),
                "{probe} matches but was skipped"
            );
            probe += chrono::Duration::minutes(1);
        }
        t = n;
    }
}

/// The slots a scheduler runs after `last` at `now`, per catch-up policy, DST included.
#[test]
fn due_slots_follow_the_catch_up_policy_and_dst() {
    use tesseract_ci::trigger::cron::{CatchUp, due_slots};
    let berlin: Tz = "Europe/Berlin".parse().expect("zone");
    let utc = chrono_tz::UTC;
    type Case<'a> = (
        &'a str,
        Tz,
        &'a str,
        &'a str,
        CatchUp,
        &'a [(&'a str, bool)],
    );
    let table: &[Case] = &[
        // On time: the minute's slot runs.
        (
            "* * * * *",
            utc,
            "2026-01-05T10:00:30Z",
            "2026-01-05T10:01:00.300Z",
            CatchUp::None,
            &[("2026-01-05T10:01:00Z", true)],
        ),
        // Down from 10:00 to 11:05: 10:10 … 11:00 were missed.
        (
            "*/10 * * * *",
            utc,
            "2026-01-05T10:00:00Z",
            "2026-01-05T11:05:20Z",
            CatchUp::None,
            &[("2026-01-05T11:00:00Z", false)],
        ),
        (
            "*/10 * * * *",
            utc,
            "2026-01-05T10:00:00Z",
            "2026-01-05T11:05:20Z",
            CatchUp::Latest,
            &[
                ("2026-01-05T10:50:00Z", false),
                ("2026-01-05T11:00:00Z", true),
            ],
        ),
        (
            "*/10 * * * *",
            utc,
            "2026-01-05T10:00:00Z",
            "2026-01-05T11:05:20Z",
            CatchUp::All,
            &[
                ("2026-01-05T10:30:00Z", false),
                ("2026-01-05T10:40:00Z", true),
                ("2026-01-05T10:50:00Z", true),
                ("2026-01-05T11:00:00Z", true),
            ],
        ),
        // Missed and on time at once: both run under `latest`.
        (
            "*/10 * * * *",
            utc,
            "2026-01-05T10:00:00Z",
            "2026-01-05T10:20:30Z",
            CatchUp::Latest,
            &[
                ("2026-01-05T10:10:00Z", true),
                ("2026-01-05T10:20:00Z", true),
            ],
        ),
        // Spring forward (Berlin, 2026-03-29): 02:30 does not exist; it runs once, at 03:00.
        (
            "30 2 * * *",
            berlin,
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:30Z",
            CatchUp::None,
            &[("2026-03-29T01:00:00Z", true)],
        ),
        (
            "30 2 * * *",
            berlin,
            "2026-03-29T01:00:00Z",
            "2026-03-29T21:00:00Z",
            CatchUp::All,
            &[],
        ),
        // Fall back (Berlin, 2026-10-25): 02:30 happens twice; it runs at the first.
        (
            "30 2 * * *",
            berlin,
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:10Z",
            CatchUp::None,
            &[("2026-10-25T00:30:00Z", true)],
        ),
        (
            "30 2 * * *",
            berlin,
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:10Z",
            CatchUp::All,
            &[],
        ),
    ];
    for (cron, tz, last, now, policy, expected) in table {
        let got: Vec<(String, bool)> = due_slots(
            &Cron::parse(cron).expect("cron"),
            *tz,
            at(last),
            at(now),
            *policy,
            3,
        )
        .into_iter()
        .map(|(t, run)| (t.format("%Y-%m-%dT%H:%M:%SZ").to_string(), run))
        .collect();
        let expected: Vec<(String, bool)> =
            expected.iter().map(|(t, r)| (t.to_string(), *r)).collect();
        assert_eq!(
            got, expected,
            "{cron} {tz} after {last} at {now} ({policy:?})"
        );
    }
}
