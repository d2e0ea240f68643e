//! Parsing the points in time a user types (`--at`, `--now`): RFC 3339, or a local
//! `YYYY-MM-DD[ HH:MM[:SS]]`, which is what people actually write; and the spans they type
//! (`26h`, `1w3d`), checked so that no value can overflow later date arithmetic.

use chrono::{DateTime, Datelike, Duration, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

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

/// Parses a user-given time. Local forms are read in the machine's time zone. Years outside
/// 1..=9999 are refused: chrono reads `+262000-01-01`, and spans added to it would overflow.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = parse_any_year(s)?;
    if !(1..=9999).contains(&t.year()) {
        return Err(format!("`{}`: the year must be between 1 and 9999", s.trim()));
    }
    Ok(t)
}

fn parse_any_year(s: &str) -> Result<DateTime<Utc>, String> {
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
        assert!(parse_time("+262000-01-01").unwrap_err().contains("between 1 and 9999"));
        assert!(parse_time("0000-01-01").unwrap_err().contains("between 1 and 9999"));
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

    proptest::proptest! {
        #[test]
        fn any_text_is_a_span_or_an_error(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
            let _ = parse_time(&s);
        }

        #[test]
        fn an_accepted_time_is_safe_to_move_by_the_longest_span(
            sign in "[+-]?",
            year in 0u32..300_000,
            rest in "-[01][0-9]-[0-3][0-9]([ T][0-2][0-9]:[0-5][0-9](:[0-5][0-9])?Z?)?",
        ) {
            let s = format!("{sign}{year:04}{rest}");
            if let Ok(t) = parse_time(&s) {
                let max = Duration::days(365 * MAX_SPAN_YEARS);
                proptest::prop_assert!(t.checked_add_signed(max).is_some() && t.checked_sub_signed(max).is_some(), "{}", t);
            }
        }

        #[test]
        fn an_accepted_span_is_safe_to_add_to_any_date_we_meet(
            parts in proptest::collection::vec((proptest::prelude::any::<u64>(), "s|min|h|d|w|y"), 1..4),
        ) {
            let s: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!(d >= Duration::zero());
                for t in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
                    let t = parse_time(t).unwrap();
                    proptest::prop_assert!(t.checked_add_signed(d).is_some() && t.checked_sub_signed(d).is_some());
                }
            }
        }
    }
}
