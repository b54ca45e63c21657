//! Durations as the config writes them: "250ms", "10s", "5m", "12h", "1h30m".

use std::time::Duration;

/// Parses one or more `<integer><unit>` parts (units `ms`, `s`, `m`, `h`, `d`)
/// and adds them up. The error says what is wrong, without the value: the
/// caller shows that.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const HINT: &str =
        "write a whole number and a unit, like \"250ms\", \"10s\", \"5m\" or \"12h\"";
    if text.is_empty() {
        return Err(format!("empty duration: {HINT}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration: {HINT}"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let number: u64 = number
            .parse()
            .map_err(|_| "duration is too long".to_string())?;
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "d" => number.checked_mul(86_400).map(Duration::from_secs),
            "" => return Err(format!("duration has no unit: {HINT}")),
            _ => return Err(format!("unknown duration unit \"{unit}\": {HINT}")),
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| "duration is too long".to_string())?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_sums_parts() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "10sec",
            "5M",
            "1h 30m",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_duration("10x").err().as_deref(),
            Some(
                "unknown duration unit \"x\": write a whole number and a unit, like \"250ms\", \"10s\", \"5m\" or \"12h\""
            )
        );
        assert!(
            parse_duration("10")
                .err()
                .is_some_and(|error| error.starts_with("duration has no unit"))
        );
    }
}
