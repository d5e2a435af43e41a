//! Office hours (`[handoff.office_hours]`, per skill in `[handoff.skill_hours]`): a weekly schedule in a time zone
//! with closed dates, parsed once. Decides whether a person is available now and, if not, when one next is. Here,
//! beside the configuration it interprets, so validating the configuration needs nothing above it.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

use super::{HandoffConfig, OfficeHoursConfig};

/// How far ahead the next opening is searched.
const LOOKAHEAD_DAYS: i32 = 31;

#[derive(Debug, Clone)]
pub struct OfficeHours {
    timezone: TimeZone,
    /// Per weekday (Monday first): open ranges in minutes after midnight, [start, end).
    weekly: [Vec<(u16, u16)>; 7],
    closed: HashSet<Date>,
    /// (month, day) closed every year.
    every_year: HashSet<(i8, i8)>,
    /// Days after Easter Sunday closed every year.
    after_easter: HashSet<i32>,
}

/// A moment in the schedule's time zone, for telling the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMoment {
    /// 0 = Monday.
    pub weekday: usize,
    /// Days after today (0 = today).
    pub days_ahead: i64,
    /// "HH:MM".
    pub time: String,
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let parse_time = |t: &str| -> Result<u16, String> {
        let (h, m) = t.trim().split_once(':').ok_or_else(|| format!("{t:?} is not HH:MM"))?;
        let (h, m): (u16, u16) = (
            h.parse().map_err(|_| format!("bad hour in {t:?}"))?,
            m.parse().map_err(|_| format!("bad minute in {t:?}"))?,
        );
        if h > 24 || m > 59 || (h == 24 && m != 0) {
            return Err(format!("{t:?} is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    let (start, end) = text.split_once('-').ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
    let range = (parse_time(start)?, parse_time(end)?);
    if range.0 >= range.1 {
        return Err(format!("{text:?} ends before it starts"));
    }
    Ok(range)
}

/// Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm, "Meeus/Jones/Butcher").
fn easter(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, month as i8, day as i8).ok()
}

fn weekday_index(weekday: Weekday) -> usize {
    weekday.to_monday_zero_offset() as usize
}

impl OfficeHours {
    pub fn from_config(config: &OfficeHoursConfig) -> Result<OfficeHours, String> {
        let timezone = TimeZone::get(&config.timezone).map_err(|e| format!("time zone {:?}: {e}", config.timezone))?;
        let days = [
            &config.monday,
            &config.tuesday,
            &config.wednesday,
            &config.thursday,
            &config.friday,
            &config.saturday,
            &config.sunday,
        ];
        let mut weekly: [Vec<(u16, u16)>; 7] = Default::default();
        for (slot, ranges) in weekly.iter_mut().zip(days) {
            *slot = ranges.iter().map(|r| parse_range(r)).collect::<Result<_, _>>()?;
            slot.sort();
        }
        let closed = config
            .closed_dates
            .iter()
            .map(|d| d.parse::<Date>().map_err(|e| format!("closed date {d:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let every_year = config
            .closed_every_year
            .iter()
            .map(|d| {
                // Checked against a leap year, so "02-29" is accepted (it is closed in the years that have it).
                let date = format!("2024-{d}").parse::<Date>().map_err(|e| format!("closed day {d:?} (MM-DD): {e}"))?;
                Ok((date.month(), date.day()))
            })
            .collect::<Result<_, String>>()?;
        if let Some(offset) = config.closed_after_easter.iter().find(|o| o.abs() > 80) {
            return Err(format!("closed_after_easter {offset}: more than 80 days from Easter"));
        }
        let after_easter = config.closed_after_easter.iter().copied().collect();
        Ok(OfficeHours { timezone, weekly, closed, every_year, after_easter })
    }

    /// Whether nobody works on `date`, whatever the weekly schedule says.
    fn is_closed(&self, date: Date) -> bool {
        self.closed.contains(&date)
            || self.every_year.contains(&(date.month(), date.day()))
            || (!self.after_easter.is_empty()
                && easter(date.year()).is_some_and(|easter| {
                    // Offsets are within 80 days, so the date and its Easter share a year.
                    let offset = i32::from(date.day_of_year()) - i32::from(easter.day_of_year());
                    self.after_easter.contains(&offset)
                }))
    }

    fn local_date_minute(&self, millis: i64) -> Option<(Date, u16)> {
        let zoned = Timestamp::from_millisecond(millis).ok()?.to_zoned_datetime(self.timezone.clone());
        let minute = zoned.hour() as u16 * 60 + zoned.minute() as u16;
        Some((zoned.date(), minute))
    }

    pub fn is_open(&self, millis: i64) -> bool {
        let Some((date, minute)) = self.local_date_minute(millis) else { return false };
        !self.is_closed(date)
            && self.weekly[weekday_index(date.weekday())].iter().any(|&(start, end)| start <= minute && minute < end)
    }

    /// `millis` itself when open, else the start of the next open range; `None` when nothing opens within a month.
    pub fn next_opening(&self, millis: i64) -> Option<i64> {
        if self.is_open(millis) {
            return Some(millis);
        }
        let (today, minute) = self.local_date_minute(millis)?;
        for offset in 0..LOOKAHEAD_DAYS {
            let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
            if self.is_closed(date) {
                continue;
            }
            let start = self.weekly[weekday_index(date.weekday())]
                .iter()
                .map(|&(start, _)| start)
                .find(|&start| offset > 0 || start > minute);
            if let Some(start) = start {
                let zoned = date
                    .at((start / 60) as i8, (start % 60) as i8, 0, 0)
                    .to_zoned_datetime(self.timezone.clone())
                    .ok()?;
                return Some(zoned.timestamp().as_millisecond());
            }
        }
        None
    }

    /// `target` in the schedule's time zone, relative to `now`.
    pub fn describe(&self, now: i64, target: i64) -> Option<LocalMoment> {
        let (today, _) = self.local_date_minute(now)?;
        let zoned = Timestamp::from_millisecond(target).ok()?.to_zoned_datetime(self.timezone.clone());
        let days_ahead = (zoned.date() - today).get_days() as i64;
        Some(LocalMoment {
            weekday: weekday_index(zoned.date().weekday()),
            days_ahead,
            time: format!("{:02}:{:02}", zoned.hour(), zoned.minute()),
        })
    }
}

/// The office hours of every skill, parsed once at start-up.
#[derive(Debug, Clone)]
pub struct Schedules {
    default: OfficeHours,
    skills: BTreeMap<String, OfficeHours>,
}

impl Schedules {
    pub fn from_config(config: &HandoffConfig) -> Result<Schedules, String> {
        let default = OfficeHours::from_config(&config.office_hours)?;
        let skills = config
            .skill_hours
            .iter()
            .map(|(skill, hours)| {
                Ok((skill.clone(), OfficeHours::from_config(hours).map_err(|e| format!("{skill}: {e}"))?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Schedules { default, skills })
    }

    pub fn for_skill(&self, skill: &str) -> &OfficeHours {
        self.skills.get(skill).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> i64 {
        let zoned: jiff::ZonedDateTime = text.parse().unwrap();
        zoned.timestamp().as_millisecond()
    }

    #[test]
    fn default_hours_open_and_close() {
        let hours = OfficeHours::from_config(&OfficeHoursConfig::default()).unwrap();
        // Wednesday 2026-11-25.
        assert!(hours.is_open(millis("2026-11-25T10:00[Europe/Amsterdam]")));
        assert!(!hours.is_open(millis("2026-11-25T20:00[Europe/Amsterdam]")));
        assert!(!hours.is_open(millis("2026-11-29T12:00[Europe/Amsterdam]")), "sunday");
        assert!(!hours.is_open(millis("2026-12-25T12:00[Europe/Amsterdam]")), "christmas");
        // Every year, without a list per year: Christmas 2031; Easter Monday 2027 (Easter: 28 March) and 2030
        // (Easter: 21 April); Ascension Day 2027 (6 May); King's Day 2028 (a Thursday).
        assert!(!hours.is_open(millis("2031-12-25T12:00[Europe/Amsterdam]")), "christmas 2031");
        assert!(!hours.is_open(millis("2027-03-29T12:00[Europe/Amsterdam]")), "easter monday 2027");
        assert!(!hours.is_open(millis("2030-04-22T12:00[Europe/Amsterdam]")), "easter monday 2030");
        assert!(!hours.is_open(millis("2027-05-06T12:00[Europe/Amsterdam]")), "ascension day 2027");
        assert!(!hours.is_open(millis("2028-04-27T12:00[Europe/Amsterdam]")), "king's day 2028");
        assert!(hours.is_open(millis("2027-03-30T12:00[Europe/Amsterdam]")), "the tuesday after easter");
        let next = hours.next_opening(millis("2026-11-28T18:00[Europe/Amsterdam]")).unwrap();
        assert_eq!(next, millis("2026-11-30T08:00[Europe/Amsterdam]"), "saturday evening -> monday 08:00");
        let moment = hours.describe(millis("2026-11-28T18:00[Europe/Amsterdam]"), next).unwrap();
        assert_eq!(moment, LocalMoment { weekday: 0, days_ahead: 2, time: "08:00".into() });
        let early = hours.next_opening(millis("2026-11-25T06:30[Europe/Amsterdam]")).unwrap();
        assert_eq!(early, millis("2026-11-25T08:00[Europe/Amsterdam]"));
    }

    #[test]
    fn bad_schedules_are_rejected() {
        let bad = |f: fn(&mut OfficeHoursConfig)| {
            let mut config = OfficeHoursConfig::default();
            f(&mut config);
            OfficeHours::from_config(&config).is_err()
        };
        assert!(bad(|c| c.timezone = "Mars/Olympus".into()));
        assert!(bad(|c| c.monday = vec!["18:00-09:00".into()]));
        assert!(bad(|c| c.monday = vec!["25:00-26:00".into()]));
        assert!(bad(|c| c.closed_dates = vec!["2026-13-01".into()]));
        assert!(bad(|c| c.closed_every_year = vec!["12-32".into()]));
        assert!(bad(|c| c.closed_after_easter = vec![120]));
        assert!(!bad(|c| c.sunday = vec!["00:00-24:00".into()]));
    }
}
