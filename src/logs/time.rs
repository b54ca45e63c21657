//! Timestamps of log records: RFC 3339 in UTC with milliseconds
//! (`2024-02-29T12:34:56.789Z`), written and read without a date crate.
//!
//! The calendar arithmetic is Howard Hinnant's `civil_from_days` and
//! `days_from_civil` (proleptic Gregorian), restricted to 1970..=9999 so that
//! every timestamp has the same 24-character width.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The width of a formatted timestamp.
pub const WIDTH: usize = "2024-02-29T12:34:56.789Z".len();

/// The last millisecond a four-digit year can show: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: u64 = 253_402_300_799_999;

const MILLIS_PER_DAY: u64 = 86_400_000;

/// Appends `at` to `out`, cut down to the millisecond. Times before 1970 are
/// shown as the epoch and times after 9999 as the end of 9999: a clock that
/// far off is wrong anyway, and a fixed width keeps the files aligned.
pub fn format(at: SystemTime, out: &mut String) {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
        .min(MAX_MILLIS);
    let (year, month, day) = civil_from_days(millis / MILLIS_PER_DAY);
    let in_day = millis % MILLIS_PER_DAY;
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
    // Digit by digit rather than through `write!`: every log line gets a
    // timestamp, and the formatting machinery cost more than the rest of
    // writing the line.
    let fields = [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (hour, 2, ':'),
        (minute, 2, ':'),
        (second, 2, '.'),
        (milli, 3, 'Z'),
    ];
    for (value, width, after) in fields {
        push_digits(out, value, width);
        out.push(after);
    }
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u64, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u64.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Reads what [`format`] writes, and only that: exactly this shape, UTC,
/// three fraction digits.
pub fn parse(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != WIDTH {
        return None;
    }
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(at, c)| b[at] != c) || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u64> {
        let digits = &b[from..to];
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let milli = number(20, 23)?;
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let millis = days * MILLIS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + milli;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

/// `at` cut down to what a record keeps: whole milliseconds.
#[cfg(test)]
pub fn truncate(at: SystemTime) -> SystemTime {
    let mut text = String::with_capacity(WIDTH);
    format(at, &mut text);
    parse(&text).unwrap_or(UNIX_EPOCH)
}

/// Year, month and day of the `days`-th day after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`], for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = year - u64::from(month <= 2);
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_millis(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn formatted(at: SystemTime) -> String {
        let mut text = String::new();
        format(at, &mut text);
        text
    }

    #[test]
    fn known_instants() {
        for (millis, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
            (MAX_MILLIS, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(formatted(at_millis(millis)), text);
            assert_eq!(parse(text), Some(at_millis(millis)), "{text}");
        }
    }

    #[test]
    fn every_day_for_centuries_round_trips() {
        let mut previous = String::new();
        for day in (0..150_000).step_by(7) {
            let at = at_millis(day * MILLIS_PER_DAY + 45_296_007);
            let text = formatted(at);
            assert_eq!(text.len(), WIDTH);
            assert!(text > previous, "{text} after {previous}");
            assert_eq!(parse(&text), Some(at), "{text}");
            previous = text;
        }
    }

    #[test]
    fn out_of_range_clocks_are_clamped_and_sub_millis_cut() {
        assert_eq!(
            formatted(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            formatted(at_millis(MAX_MILLIS) + Duration::from_secs(86_400 * 400)),
            "9999-12-31T23:59:59.999Z"
        );
        let at = at_millis(1_000) + Duration::from_nanos(999_999);
        assert_eq!(truncate(at), at_millis(1_000));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "2024-02-29T12:34:56Z",
            "2024-02-29 12:34:56.789Z",
            "2024-02-29T12:34:56.789+00:00",
            "2023-02-29T12:34:56.789Z",
            "2024-13-01T12:34:56.789Z",
            "2024-00-01T12:34:56.789Z",
            "2024-01-00T12:34:56.789Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T23:60:00.000Z",
            "2024-01-01T23:59:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "2024-0a-01T12:34:56.789Z",
            "2024-02-29T12:34:56.7890",
            "２024-02-29T12:34:56.789Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
