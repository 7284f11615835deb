//! Legal durations (SPEC §4.2): `N workdays` (half days allowed), `N workhours`,
//! `N days` (calendar days, Civil Code Art. 147–148), `N months`, or `none`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Duration {
    /// Working days, in halves: `15 workdays` is 30, `2.5 workdays` is 5.
    Workdays { halves: u32 },
    /// Working time, in seconds.
    Workhours { seconds: u32 },
    /// Calendar days.
    Days(u32),
    /// Calendar months.
    Months(u32),
    /// No deadline.
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a duration: {why} (examples: `15 workdays`, `2.5 workdays`, `4 workhours`, `30 days`, `3 months`, `none`)")]
pub struct DurationError {
    pub text: String,
    pub why: &'static str,
}

impl Duration {
    pub fn workdays(n: u32) -> Self {
        Duration::Workdays { halves: n * 2 }
    }

    pub fn workhours(n: u32) -> Self {
        Duration::Workhours { seconds: n * 3600 }
    }

    /// The unit's name, as written in config and output.
    pub fn unit(&self) -> &'static str {
        match self {
            Duration::Workdays { .. } => "workdays",
            Duration::Workhours { .. } => "workhours",
            Duration::Days(_) => "days",
            Duration::Months(_) => "months",
            Duration::None => "none",
        }
    }

    /// Vietnamese wording, for traces: the decimal comma ("0,5 ngày làm việc").
    pub fn to_vietnamese(&self) -> String {
        let amount = self.amount().replace('.', ",");
        match self {
            Duration::Workdays { .. } => format!("{amount} ngày làm việc"),
            Duration::Workhours { .. } => format!("{amount} giờ làm việc"),
            Duration::Days(n) => format!("{n} ngày"),
            Duration::Months(n) => format!("{n} tháng"),
            Duration::None => "không có thời hạn".into(),
        }
    }

    fn amount(&self) -> String {
        match *self {
            Duration::Workdays { halves } if halves % 2 == 1 => format!("{}.5", halves / 2),
            Duration::Workdays { halves } => format!("{}", halves / 2),
            Duration::Workhours { seconds } => {
                let h = seconds as f64 / 3600.0;
                if seconds % 3600 == 0 {
                    format!("{}", seconds / 3600)
                } else {
                    format!("{}", (h * 100.0).round() / 100.0)
                }
            }
            Duration::Days(n) | Duration::Months(n) => n.to_string(),
            Duration::None => String::new(),
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Duration::None => f.write_str("none"),
            _ => write!(f, "{} {}", self.amount(), self.unit()),
        }
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| DurationError {
            text: text.to_string(),
            why,
        };
        let t = text.trim().to_lowercase();
        if matches!(t.as_str(), "none" | "không" | "không có thời hạn" | "-") {
            return Ok(Duration::None);
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .ok_or_else(|| err("no unit"))?;
        let (num, unit) = t.split_at(split);
        let num = num.replace(',', ".");
        if num.is_empty() {
            return Err(err("no number"));
        }
        let value: f64 = num.parse().map_err(|_| err("bad number"))?;
        let unit = unit.trim();
        let whole = |v: f64| -> Result<u32, DurationError> {
            if v.fract() != 0.0 {
                return Err(err("this unit takes a whole number"));
            }
            if v > 100_000.0 {
                return Err(err("too large"));
            }
            Ok(v as u32)
        };
        match unit {
            "workdays" | "workday" | "wd" | "ngày làm việc" => {
                let halves = value * 2.0;
                if halves.fract() != 0.0 {
                    return Err(err("working days take whole or half numbers"));
                }
                Ok(Duration::Workdays {
                    halves: whole(halves)?,
                })
            }
            "workhours" | "workhour" | "wh" | "hours" | "hour" | "h" | "giờ làm việc" | "giờ" =>
            {
                if value > 1_000_000.0 {
                    return Err(err("too large"));
                }
                let seconds = value * 3600.0;
                if seconds.fract() != 0.0 {
                    return Err(err("working hours must be whole seconds"));
                }
                Ok(Duration::Workhours {
                    seconds: seconds as u32,
                })
            }
            "days" | "day" | "d" | "ngày" => Ok(Duration::Days(whole(value)?)),
            "months" | "month" | "tháng" => Ok(Duration::Months(whole(value)?)),
            _ => Err(err("unknown unit")),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_alias() {
        assert_eq!("15 workdays".parse(), Ok(Duration::workdays(15)));
        assert_eq!("2.5 workdays".parse(), Ok(Duration::Workdays { halves: 5 }));
        assert_eq!(
            "0,5 ngày làm việc".parse(),
            Ok(Duration::Workdays { halves: 1 })
        );
        assert_eq!("0 workdays".parse(), Ok(Duration::Workdays { halves: 0 }));
        assert_eq!("4 workhours".parse(), Ok(Duration::workhours(4)));
        assert_eq!(
            "1.5 giờ làm việc".parse(),
            Ok(Duration::Workhours { seconds: 5400 })
        );
        assert_eq!("30 days".parse(), Ok(Duration::Days(30)));
        assert_eq!("30 ngày".parse(), Ok(Duration::Days(30)));
        assert_eq!("3 months".parse(), Ok(Duration::Months(3)));
        assert_eq!("none".parse(), Ok(Duration::None));
        assert_eq!("15workdays".parse(), Ok(Duration::workdays(15)));
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        assert_eq!("15".parse::<Duration>().unwrap_err().why, "no unit");
        assert_eq!("workdays".parse::<Duration>().unwrap_err().why, "no number");
        assert_eq!(
            "2.3 workdays".parse::<Duration>().unwrap_err().why,
            "working days take whole or half numbers"
        );
        assert_eq!(
            "1.5 days".parse::<Duration>().unwrap_err().why,
            "this unit takes a whole number"
        );
        assert_eq!(
            "3 weeks".parse::<Duration>().unwrap_err().why,
            "unknown unit"
        );
        assert_eq!("-3 days".parse::<Duration>().unwrap_err().why, "no number");
    }

    #[test]
    fn displays_round_trip() {
        for s in [
            "15 workdays",
            "2.5 workdays",
            "4 workhours",
            "1.5 workhours",
            "30 days",
            "3 months",
            "none",
        ] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Duration::workdays(15).to_vietnamese(), "15 ngày làm việc");
        // Vietnamese writes the decimal comma; the configuration's form keeps the point.
        let half: Duration = "0.5 workdays".parse().unwrap();
        assert_eq!(half.to_vietnamese(), "0,5 ngày làm việc");
        assert_eq!(half.to_string(), "0.5 workdays");
        let hours: Duration = "1.25 workhours".parse().unwrap();
        assert_eq!(hours.to_vietnamese(), "1,25 giờ làm việc");
    }
}
