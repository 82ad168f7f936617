//! Calendar dates (`YYYY-MM-DD`), UTC timestamps and age in whole years, without a date crate.
//!
//! The wire needs only three things: birthdays as `YYYY-MM-DD`, record times as RFC 3339 UTC
//! strings and a person's age today. A tiny proleptic-Gregorian implementation keeps this crate
//! free of heavy dependencies and compilable to wasm32. Nothing here reads the clock: the caller
//! passes "today" in, which keeps every function pure and testable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first year a [`Date`] can hold.
pub const MIN_YEAR: i32 = 1;
/// The last year a [`Date`] can hold; four digits keep `YYYY-MM-DD` unambiguous.
pub const MAX_YEAR: i32 = 9999;

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar (Hinnant's algorithm).
const UNIX_EPOCH_SHIFT_DAYS: i64 = 719_468;
/// Days in a 400-year Gregorian era.
const DAYS_PER_ERA: i64 = 146_097;
/// Milliseconds in a day.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Why a text is not a valid date or timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// The text does not have the `YYYY-MM-DD` (or timestamp) shape.
    #[error("expected a date as YYYY-MM-DD")]
    Format,
    /// The shape is right but the day does not exist (e.g. 2023-02-29).
    #[error("{year:04}-{month:02}-{day:02} is not a calendar date")]
    NoSuchDay {
        /// The year as written.
        year: i32,
        /// The month as written.
        month: u32,
        /// The day as written.
        day: u32,
    },
    /// The date lies outside years 1..=9999.
    #[error("date is outside years 0001 to 9999")]
    OutOfRange,
}

/// A calendar day in the proleptic Gregorian calendar, years 1..=9999. Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

/// Whether `year` has a 29th of February.
pub const fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1..=12) of `year`; 0 for a month out of range.
pub const fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// The date `year-month-day`, or an error when that day does not exist or lies outside
    /// years 1..=9999.
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self, DateError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(DateError::OutOfRange);
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::NoSuchDay { year, month, day });
        }
        // Both fit in u8: month <= 12 and day <= 31 were checked above.
        Ok(Self { year, month: month as u8, day: day as u8 })
    }

    /// The year.
    pub const fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub const fn month(self) -> u32 {
        self.month as u32
    }

    /// The day of the month, 1..=31.
    pub const fn day(self) -> u32 {
        self.day as u32
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn unix_days(self) -> i64 {
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month_from_march = (month + 9) % 12;
        let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * DAYS_PER_ERA + day_of_era - UNIX_EPOCH_SHIFT_DAYS
    }

    /// The date `days` after 1970-01-01, or an error outside years 1..=9999.
    pub fn from_unix_days(days: i64) -> Result<Self, DateError> {
        let shifted = days.checked_add(UNIX_EPOCH_SHIFT_DAYS).ok_or(DateError::OutOfRange)?;
        let era = shifted.div_euclid(DAYS_PER_ERA);
        let day_of_era = shifted - era * DAYS_PER_ERA;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
        let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        let year = i32::try_from(year).map_err(|_| DateError::OutOfRange)?;
        // month is 1..=12 and day 1..=31 by construction of the algorithm.
        Self::new(year, month as u32, day as u32)
    }

    /// The UTC calendar day of a Unix time in seconds (what a server passes as "today").
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, DateError> {
        Self::from_unix_days(seconds.div_euclid(86_400))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Parses exactly `n` ASCII digits.
fn parse_digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u32, |acc, digit| acc * 10 + u32::from(digit - b'0')))
}

impl FromStr for Date {
    type Err = DateError;

    /// Accepts exactly `YYYY-MM-DD` (ten characters, zero-padded).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(DateError::Format);
        }
        let year = parse_digits(&bytes[0..4]).ok_or(DateError::Format)?;
        let month = parse_digits(&bytes[5..7]).ok_or(DateError::Format)?;
        let day = parse_digits(&bytes[8..10]).ok_or(DateError::Format)?;
        // Four digits always fit in i32.
        Self::new(year as i32, month, day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whole years from `birthday` to `today`: the age a person has on `today`.
///
/// The age goes up on the anniversary of the birthday. Someone born on 29 February has their
/// birthday on 1 March in common years (the anniversary comparison is by month and day, and
/// 28 February comes before 29 February). A birthday after `today` gives 0, never a negative age.
pub fn age_on(birthday: Date, today: Date) -> i64 {
    if today <= birthday {
        return 0;
    }
    let years = i64::from(today.year - birthday.year);
    let before_anniversary = (today.month, today.day) < (birthday.month, birthday.day);
    years - i64::from(before_anniversary)
}

/// An instant in UTC with millisecond precision, as Unix milliseconds. On the wire it is an
/// RFC 3339 string such as `2024-05-01T12:34:56.789Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// The UTC calendar day of this instant.
    pub fn date(self) -> Result<Date, DateError> {
        Date::from_unix_days(self.0.div_euclid(MILLIS_PER_DAY))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(date) = self.date() else {
            // Outside years 1..=9999 no RFC 3339 text exists; say so rather than panic.
            return write!(f, "@{}ms", self.0);
        };
        let millis_of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (hours, rest) = (millis_of_day / 3_600_000, millis_of_day % 3_600_000);
        let (minutes, rest) = (rest / 60_000, rest % 60_000);
        let (seconds, millis) = (rest / 1000, rest % 1000);
        write!(f, "{date}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
    }
}

impl FromStr for Timestamp {
    type Err = DateError;

    /// Accepts `YYYY-MM-DDTHH:MM:SSZ` and `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC only).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        let shape_ok = matches!(bytes.len(), 20 | 24)
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && bytes[16] == b':'
            && bytes[bytes.len() - 1] == b'Z';
        if !shape_ok {
            return Err(DateError::Format);
        }
        let date: Date = text.get(0..10).ok_or(DateError::Format)?.parse()?;
        let hours = parse_digits(&bytes[11..13]).ok_or(DateError::Format)?;
        let minutes = parse_digits(&bytes[14..16]).ok_or(DateError::Format)?;
        let seconds = parse_digits(&bytes[17..19]).ok_or(DateError::Format)?;
        let millis = if bytes.len() == 24 {
            if bytes[19] != b'.' {
                return Err(DateError::Format);
            }
            parse_digits(&bytes[20..23]).ok_or(DateError::Format)?
        } else {
            0
        };
        if hours > 23 || minutes > 59 || seconds > 59 {
            return Err(DateError::Format);
        }
        let millis_of_day = i64::from(((hours * 60 + minutes) * 60 + seconds) * 1000 + millis);
        Ok(Self(date.unix_days() * MILLIS_PER_DAY + millis_of_day))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    //! OpenAPI schemas for the string-encoded date types.

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

    impl utoipa::PartialSchema for super::Date {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
                .examples(["1990-05-17"])
                .into()
        }
    }

    impl utoipa::ToSchema for super::Date {}

    impl utoipa::PartialSchema for super::Timestamp {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .examples(["2024-05-01T12:34:56.789Z"])
                .into()
        }
    }

    impl utoipa::ToSchema for super::Timestamp {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_dates() {
        assert_eq!(date("1990-05-17").to_string(), "1990-05-17");
        assert_eq!(date("2024-02-29").day(), 29);
        assert_eq!(
            "2023-02-29".parse::<Date>(),
            Err(DateError::NoSuchDay { year: 2023, month: 2, day: 29 })
        );
        assert_eq!(
            "1900-02-29".parse::<Date>().map(|_| ()),
            Err(DateError::NoSuchDay { year: 1900, month: 2, day: 29 })
        );
        assert_eq!(date("2000-02-29").month(), 2);
        for bad in [
            "",
            "1990-5-17",
            "1990/05/17",
            "19900517",
            "1990-05-17T",
            "+990-05-17",
            "1990-13-01",
            "0000-01-01",
            "١٩٩٠-05-17",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn unix_days_match_known_dates() {
        assert_eq!(date("1970-01-01").unix_days(), 0);
        assert_eq!(date("2000-03-01").unix_days(), 11_017);
        assert_eq!(date("1969-12-31").unix_days(), -1);
        assert_eq!(Date::from_unix_days(19_723).unwrap(), date("2024-01-01"));
        assert_eq!(Date::from_unix_seconds(1_709_164_800).unwrap(), date("2024-02-29"));
        assert_eq!(Date::from_unix_days(i64::MAX), Err(DateError::OutOfRange));
    }

    #[test]
    fn ages_are_whole_years() {
        let born = date("1990-05-17");
        assert_eq!(age_on(born, date("2024-05-16")), 33);
        assert_eq!(age_on(born, date("2024-05-17")), 34);
        assert_eq!(age_on(born, date("1990-05-17")), 0);
        assert_eq!(age_on(born, date("1991-05-16")), 0);
        assert_eq!(
            age_on(born, date("1980-01-01")),
            0,
            "a future birthday is age 0, never negative"
        );
    }

    #[test]
    fn leap_day_birthdays_count_from_the_first_of_march_in_common_years() {
        let born = date("2000-02-29");
        assert_eq!(age_on(born, date("2001-02-28")), 0);
        assert_eq!(age_on(born, date("2001-03-01")), 1);
        assert_eq!(age_on(born, date("2004-02-28")), 3);
        assert_eq!(age_on(born, date("2004-02-29")), 4);
        // Someone born on 28 February of a leap year is a year older on the 28th, not the 29th.
        assert_eq!(age_on(date("2004-02-28"), date("2005-02-28")), 1);
        assert_eq!(age_on(date("2003-03-01"), date("2004-02-29")), 0);
    }

    #[test]
    fn timestamps_round_trip_as_rfc3339() {
        let ts = Timestamp::from_unix_millis(1_714_566_896_789);
        assert_eq!(ts.to_string(), "2024-05-01T12:34:56.789Z");
        assert_eq!("2024-05-01T12:34:56.789Z".parse::<Timestamp>(), Ok(ts));
        assert_eq!(
            "2024-05-01T12:34:56Z".parse::<Timestamp>(),
            Ok(Timestamp::from_unix_millis(1_714_566_896_000))
        );
        assert_eq!(Timestamp::from_unix_millis(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert!("2024-05-01T24:00:00Z".parse::<Timestamp>().is_err());
        assert!("2024-05-01 12:34:56Z".parse::<Timestamp>().is_err());
        assert_eq!(serde_json::to_string(&ts).unwrap(), "\"2024-05-01T12:34:56.789Z\"");
        assert!(Timestamp::from_unix_millis(i64::MAX).to_string().starts_with('@'));
    }

    proptest! {
        #[test]
        fn unix_days_round_trip(days in -719_162i64..2_932_896) {
            let day = Date::from_unix_days(days).unwrap();
            prop_assert_eq!(day.unix_days(), days);
            prop_assert_eq!(day.to_string().parse::<Date>().unwrap(), day);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,12}") {
            let _ = text.parse::<Date>();
            let _ = text.parse::<Timestamp>();
        }

        #[test]
        fn age_is_monotonic(born in 0i64..20_000, later in 0i64..60_000) {
            let birthday = Date::from_unix_days(born).unwrap();
            let today = Date::from_unix_days(born + later).unwrap();
            let tomorrow = Date::from_unix_days(born + later + 1).unwrap();
            prop_assert!(age_on(birthday, tomorrow) >= age_on(birthday, today));
            prop_assert!(age_on(birthday, today) <= later / 365);
        }
    }
}
