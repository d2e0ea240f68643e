//! Parsing the points in time a user types (`--at`, `--now`): RFC 3339, or a local
//! `YYYY-MM-DD[ HH:MM[:SS]]`, which is what people actually write; and the spans they type
//! (`26h`, `1w3d`), checked so that no value can overflow later date arithmetic.

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The longest span we accept: far beyond any retention or schedule, and small enough that
/// `now ± span` stays inside chrono's range (±262 000 years) for any date we meet.
pub const MAX_SPAN_YEARS: i64 = 10_000;

/// Parses a span such as `30min`, `26h`, `7d`, `2w`, `1y` or `1w3d` (units s, min, h, d, w,
/// y = 365 d). Never panics: a number too large, or a total above [`MAX_SPAN_YEARS`], is an
/// error that says so.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let too_long = || format!("`{s}` is too long; the longest span is {MAX_SPAN_YEARS}y");
    let max = Duration::try_days(365 * MAX_SPAN_YEARS).expect("10 000 years fit in a chrono Duration");
    let mut total = Duration::zero();
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{s}` is not a duration; write e.g. 30min, 26h, 7d, 2w, 1y"));
        }
        let n: i64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "s" => Duration::try_seconds(n),
            "min" => Duration::try_minutes(n),
            "h" => Duration::try_hours(n),
            "d" => Duration::try_days(n),
            "w" => Duration::try_weeks(n),
            "y" => n.checked_mul(365).and_then(Duration::try_days),
            _ => return Err(format!("`{s}`: unknown unit `{unit}`; use s, min, h, d, w or y")),
        };
        total = part.and_then(|p| total.checked_add(&p)).filter(|t| *t <= max).ok_or_else(too_long)?;
    }
    Ok(total)
}

/// Parses a user-given time. Local forms are read in the machine's time zone.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return local(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        // A bare date means "as of the end of that day".
        return local(d.and_hms_opt(23, 59, 59).expect("23:59:59 is a valid time"));
    }
    Err(format!("`{s}` is not a time; write 2026-11-24, \"2026-11-24 10:15\" or 2026-11-24T10:15:00Z"))
}

fn local(n: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    Local
        .from_local_datetime(&n)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{n} does not exist in the local time zone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_local_forms() {
        let t = parse_time("2026-11-24T10:15:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T10:15:00+00:00");
        assert!(parse_time("2026-11-24 10:15").is_ok());
        assert!(parse_time("2026-11-24").is_ok());
        assert!(parse_time("yesterday").unwrap_err().contains("not a time"));
    }

    #[test]
    fn spans_parse_and_overflow_is_an_error() {
        assert_eq!(parse_duration("26h").unwrap(), Duration::hours(26));
        assert_eq!(parse_duration("1w3d").unwrap(), Duration::days(10));
        assert_eq!(parse_duration("30min").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("10000y").unwrap(), Duration::days(3_650_000));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("3m").unwrap_err().contains("unknown unit `m`"));
        for huge in ["99999999999999999d", "1000000y", "99999999999999999999s", "10001y", "9999y9999y"] {
            assert!(parse_duration(huge).unwrap_err().contains("too long"), "{huge}");
        }
    }
}
