//! Five-field POSIX cron with Vixie semantics (day-of-month OR day-of-week when both are
//! restricted), month/day names, `7` = Sunday, and time zones with defined DST behaviour:
//! a slot skipped by spring-forward fires once at the first valid minute after the gap;
//! a slot repeated by fall-back fires once, at its first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub source: String,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_star: bool,
    dow_star: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// Byte offset of the offending field inside the expression.
    pub offset: usize,
    pub message: String,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Cron {
    pub fn parse(source: &str) -> Result<Cron, CronError> {
        let mut fields = Vec::new();
        let mut offset = 0;
        for part in source.split_ascii_whitespace() {
            let at = source[offset..].find(part).map_or(offset, |i| offset + i);
            fields.push((part, at));
            offset = at + part.len();
        }
        if source.trim_start().starts_with('@') {
            return Err(CronError {
                offset: 0,
                message:
                    "macros such as `@daily` are not supported; use five fields, e.g. `0 0 * * *`"
                        .into(),
            });
        }
        if fields.len() != 5 {
            return Err(CronError {
                offset: 0,
                message: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
            });
        }
        let mut sets = [0u64; 5];
        for (i, (text, at)) in fields.iter().enumerate() {
            sets[i] = parse_field(text, &FIELDS[i]).map_err(|(rel, message)| CronError {
                offset: at + rel,
                message: format!("{} field `{text}`: {message}", FIELDS[i].name),
            })?;
        }
        // 7 is another name for Sunday.
        let mut dow = sets[4];
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & !(1 << 7);
        }
        Ok(Cron {
            source: source.to_string(),
            minutes: sets[0],
            hours: sets[1] as u32,
            days_of_month: sets[2] as u32,
            months: sets[3] as u16,
            days_of_week: dow as u8,
            dom_star: fields[2].0.starts_with('*'),
            dow_star: fields[4].0.starts_with('*'),
        })
    }

    /// Whether the calendar date is selected (month, and day-of-month/day-of-week per Vixie).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether a wall-clock minute is selected.
    pub fn matches(&self, t: chrono::NaiveDateTime) -> bool {
        self.matches_date(t.date())
            && self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
    }

    /// The first fire time strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).date_naive() - Duration::days(1);
        // Twenty-eight years cover every weekday/leap-year combination.
        for day in start.iter_days().take(366 * 28 + 2) {
            if !self.matches_date(day) {
                continue;
            }
            for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                    let local = day.and_hms_opt(hour, minute, 0)?;
                    let instant = resolve_local(tz, local)?;
                    if instant > after {
                        return Some(instant);
                    }
                }
            }
        }
        None
    }

    /// The next `count` fire times after `from`.
    pub fn upcoming(&self, from: DateTime<Utc>, tz: Tz, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = from;
        while out.len() < count {
            match self.next_after(cursor, tz) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }
}

/// Maps a wall-clock time to an instant: the earliest on a fall-back overlap, the first
/// valid minute after the gap on a spring-forward.
fn resolve_local(tz: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    for shift in 0..=24 * 60 {
        match tz.from_local_datetime(&(local + Duration::minutes(shift))) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
            LocalResult::None => continue,
        }
    }
    None
}

fn parse_field(text: &str, field: &Field) -> Result<u64, (usize, String)> {
    let mut set = 0u64;
    let mut at = 0;
    for item in text.split(',') {
        let item_at = at;
        at += item.len() + 1;
        if item.is_empty() {
            return Err((item_at, "empty list item".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| (item_at + r.len() + 1, format!("step `{s}` is not a number")))?;
                if step == 0 {
                    return Err((item_at + r.len() + 1, "step must be at least 1".into()));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (
                field.min,
                if field.name == "day-of-week" {
                    6
                } else {
                    field.max
                },
            )
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = value(a, field).map_err(|m| (item_at, m))?;
            let hi = value(b, field).map_err(|m| (item_at + a.len() + 1, m))?;
            if lo > hi {
                return Err((item_at, format!("range {lo}-{hi} is backwards")));
            }
            (lo, hi)
        } else {
            let v = value(range, field).map_err(|m| (item_at, m))?;
            // Vixie: `a/step` means `a-max/step`.
            (v, if step.is_some() { field.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + if field.name == "month" { 1 } else { 0 });
    }
    let v: u32 = text.parse().map_err(|_| {
        if field.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!(
                "`{text}` is not a number or a name ({})",
                field
                    .names
                    .iter()
                    .map(|n| n.to_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    })?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is out of range {}-{}", field.min, field.max));
    }
    Ok(v)
}

/// What a scheduler does about slots it missed (it was down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Missed slots are recorded, not run.
    None,
    /// One run, for the most recent missed slot.
    Latest,
    /// A run per missed slot, the most recent `cap` of them.
    All,
}

/// How far back missed slots are looked for.
const LOOK_BACK_DAYS: i64 = 31;

/// The slots of `cron` after `last` up to `now`, oldest first, each with whether it runs:
/// the slot of the current minute always does, missed ones as `policy` says. The newest
/// slot is always in the list (recorded, it is where the next look starts).
pub fn due_slots(
    cron: &Cron,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: CatchUp,
    cap: usize,
) -> Vec<(DateTime<Utc>, bool)> {
    let mut cursor = last.max(now - Duration::days(LOOK_BACK_DAYS));
    // The newest `cap + 1` slots are all any policy needs.
    let keep = cap.max(1) + 1;
    let mut slots: std::collections::VecDeque<DateTime<Utc>> = Default::default();
    while let Some(slot) = cron.next_after(cursor, tz).filter(|s| *s <= now) {
        if slots.len() == keep {
            slots.pop_front();
        }
        slots.push_back(slot);
        cursor = slot;
    }
    let on_time = |slot: &DateTime<Utc>| now - *slot < Duration::seconds(60);
    let missed: Vec<DateTime<Utc>> = slots.iter().filter(|s| !on_time(s)).copied().collect();
    let run_missed = match policy {
        CatchUp::None => 0,
        CatchUp::Latest => 1,
        CatchUp::All => cap,
    };
    let first_run = missed.len().saturating_sub(run_missed);
    let mut out: Vec<(DateTime<Utc>, bool)> = missed
        .iter()
        .enumerate()
        .filter(|(i, _)| *i + 1 >= first_run)
        .map(|(i, s)| (*s, i >= first_run))
        .collect();
    out.extend(slots.iter().filter(|s| on_time(s)).map(|s| (*s, true)));
    out
}
