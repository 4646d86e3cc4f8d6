//! UTC calendar dates from Unix seconds and back, without a date library: image dates (RFC
//! 3339 `created`) and EFI_TIME both need them. The day arithmetic is Howard Hinnant's
//! `civil_from_days` / `days_from_civil` (proleptic Gregorian calendar).

/// A UTC date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Civil {
    /// The date and time `unix` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(unix: u64) -> Civil {
        let days = (unix / 86_400) as i64;
        let secs = unix % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u8,
            day: (doy - (153 * mp + 2) / 5 + 1) as u8,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }
}

/// Days from 1970-01-01 to `year-month-day` (month 1–12), negative before it.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_across_leap_days_and_eras() {
        for unix in [0u64, 951_782_399, 951_782_400, 1_767_323_045, 4_107_542_399] {
            let c = Civil::from_unix(unix);
            let days = days_from_civil(c.year, i64::from(c.month), i64::from(c.day));
            let secs = i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second);
            assert_eq!(days * 86_400 + secs, unix as i64, "{c:?}");
        }
        // 2000-02-29T23:59:59Z, a leap day of a year divisible by 400.
        let c = Civil::from_unix(951_868_799);
        assert_eq!((c.year, c.month, c.day, c.hour), (2000, 2, 29, 23));
    }
}
