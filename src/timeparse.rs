//! Parsing the points in time a user types (`--at`, `--now`): RFC 3339, or a local
//! `YYYY-MM-DD[ HH:MM[:SS]]`, which is what people actually write.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

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
}
