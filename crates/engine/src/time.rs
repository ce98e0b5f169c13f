//! CloudTrail `eventTime` parsing and formatting, as milliseconds since the Unix epoch.
//!
//! Hand-written rather than pulled from a date crate: the engine needs exactly one
//! format (RFC 3339 in UTC, with or without fractional seconds) and it sits on the
//! per-record hot path of the backtest.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|+HH:MM|-HH:MM)`; a space is accepted for `T`
/// and a missing zone is read as UTC, since both occur in exported trails.
pub fn parse_event_time(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_min = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let off = (digit(*h1)? * 10 + digit(*h2)?) * 60 + digit(*m1)? * 10 + digit(*m2)?;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, or with `.mmm` when the millisecond part is not zero.
pub fn format_millis(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
    }
}

/// A duration as the policy writes it (`5m`, `1h30m`, `90s`, `250ms`): what
/// `policy::parse_duration` reads back.
pub fn format_duration(ms: Millis) -> String {
    if ms <= 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// Serde helpers: a [`Millis`] as an RFC 3339 string, read back with [`parse_event_time`].
pub mod rfc3339 {
    use super::{format_millis, parse_event_time, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
    pub fn serialize<S: Serializer>(t: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_millis(*t))
    }

    /// Reads any form [`parse_event_time`] accepts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        parse_event_time(&s).ok_or_else(|| serde::de::Error::custom(format!("not a time: {s}")))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days, proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_seen_in_real_trails() {
        let cases: &[(&str, Option<Millis>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2018-01-09T22:09:00Z", Some(1_515_535_740_000)),
            ("2018-01-09T22:09:00.5Z", Some(1_515_535_740_500)),
            ("2018-01-09T22:09:00.123456Z", Some(1_515_535_740_123)),
            ("2018-01-09 22:09:00", Some(1_515_535_740_000)),
            ("2018-01-09T17:09:00-05:00", Some(1_515_535_740_000)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2023-02-29T00:00:00Z", None),
            ("2018-13-09T22:09:00Z", None),
            ("2018-01-09T22:09:00.Z", None),
            ("2018-01-09T22:09", None),
            ("2018-01-09T22:09:00ZZ", None),
            ("not a time at all!!", None),
            ("２０１８-01-09T22:09:00Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_event_time(input), *want, "{input}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_515_535_740_000, 1_515_535_740_123, 4_102_444_800_000] {
            assert_eq!(parse_event_time(&format_millis(ms)), Some(ms));
        }
        assert_eq!(format_millis(1_515_535_740_000), "2018-01-09T22:09:00Z");
    }
}
