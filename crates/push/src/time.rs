//! Vendor times: zone-less China local times (`2020-03-28 05:59:02`), RFC 3339 with a zone,
//! dates, and epoch seconds or milliseconds (the pull API, `createTimeStamp`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use xiansuo_domain::{CHINA_TIME, Instant};

/// Reads a vendor time. `None` when the text is no time this service understands, or is outside
/// the years 1900 to 9999 (which every database stores alike).
pub fn parse_time(text: &str) -> Option<Instant> {
    parse_any_time(text).filter(|t| (1900..=9999).contains(&t.year()))
}

/// A time as a bound of a range (a list filter), clamped to the years 1900 to 9999 that every
/// database stores alike. As an upper bound (`end_of_day`), a bare date means the end of that
/// day (China time).
pub fn parse_time_bound(text: &str, end_of_day: bool) -> Option<Instant> {
    let t = parse_any_time(text)?;
    let s = text.trim();
    let date_only = s.len() == 10 && !s.bytes().all(|b| b.is_ascii_digit());
    let t = if end_of_day && date_only { t + chrono::Duration::days(1) } else { t };
    let (earliest, latest) = (
        CHINA_TIME.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).single()?.with_timezone(&Utc),
        CHINA_TIME.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single()?.with_timezone(&Utc),
    );
    Some(t.clamp(earliest, latest))
}

fn parse_any_time(text: &str) -> Option<Instant> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        // Ten digits or fewer are seconds (until the year 2286); up to thirteen, milliseconds.
        return match s.len() {
            0..=10 => DateTime::from_timestamp(n, 0),
            11..=13 => DateTime::from_timestamp_millis(n),
            _ => None,
        };
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let local = s.replace('/', "-").replacen('T', " ", 1);
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&local, f).ok())
        .or_else(|| NaiveDate::parse_from_str(&local, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    CHINA_TIME.from_local_datetime(&naive).single().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Instant {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn zoneless_times_are_china_time() {
        assert_eq!(parse_time("2020-03-28 05:59:02"), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time("2020/03/28 05:59:02"), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time("2020-03-28T05:59:02"), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time("2020-03-28 05:59"), Some(utc("2020-03-27T21:59:00Z")));
        assert_eq!(parse_time("2020-03-28"), Some(utc("2020-03-27T16:00:00Z")));
        assert_eq!(parse_time("2020-03-28 05:59:02.250"), Some(utc("2020-03-27T21:59:02.250Z")));
    }

    #[test]
    fn zoned_times_keep_their_zone() {
        assert_eq!(parse_time("2020-03-28T05:59:02Z"), Some(utc("2020-03-28T05:59:02Z")));
        assert_eq!(parse_time("2020-03-28T05:59:02+08:00"), Some(utc("2020-03-27T21:59:02Z")));
    }

    #[test]
    fn epoch_seconds_and_milliseconds() {
        assert_eq!(parse_time("1585346342"), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time("1585346342000"), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time("1585346342123"), Some(utc("2020-03-27T21:59:02.123Z")));
    }

    #[test]
    fn a_date_as_upper_bound_is_the_end_of_that_day() {
        assert_eq!(parse_time_bound("2020-03-28", true), Some(utc("2020-03-28T16:00:00Z")));
        assert_eq!(parse_time_bound("2020-03-28", false), Some(utc("2020-03-27T16:00:00Z")));
        assert_eq!(parse_time_bound("2020-03-28 05:59:02", true), Some(utc("2020-03-27T21:59:02Z")));
        assert_eq!(parse_time_bound("1585346342", true), Some(utc("2020-03-27T21:59:02Z")));
        // Far bounds are clamped, not refused.
        assert_eq!(parse_time_bound("1186-11-24", true), Some(utc("1899-12-31T16:00:00Z")));
        assert_eq!(parse_time_bound("昨天", true), None);
    }

    #[test]
    fn nonsense_is_not_a_time() {
        for s in ["", "昨天", "2020-13-45 10:00:00", "12345678901234567890", "1585346342x", "-5000-01-01", "0001-01-01"]
        {
            assert_eq!(parse_time(s), None, "{s}");
        }
    }
}
