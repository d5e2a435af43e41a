//! KPI series: the KPIs of a range per hour or per day of a time zone. The range's records are read once and split
//! by the bucket each conversation started in; every bucket is then computed by [`compute`], the function of
//! `GetKpis`, so a bucket and `GetKpis` over the bucket's range never disagree. It reads, never writes.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::{RoundMode, Timestamp, ToSpan, Unit, ZonedDateTime as Zoned, ZonedDateTimeRound as ZonedRound};

use super::{KpiQuery, Kpis, Stats, check_query, compute, faq_skills};
use crate::config::KpiConfig;
use crate::error::{Error, Result};
use crate::store::{StatsDetail, StatsRecords, Store};

/// The most buckets one series may have: 100 days by the hour, six and a half years by the day. A chart has no
/// room for more, and the bound keeps one request's work in proportion.
pub const MAX_BUCKETS: usize = 2400;

/// How long a bucket is, in the series' time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

/// A series: the range and filters (as for [`super::kpis`]), the buckets' length and the time zone they follow.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub kpi: KpiQuery,
    pub granularity: Granularity,
    /// An IANA time zone name; empty means UTC.
    pub time_zone: String,
}

/// The KPIs of every bucket, oldest first. The buckets leave out the top lists (intents, knowledge gaps), which
/// are about the whole range.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub query: SeriesQuery,
    /// The time zone's name as used ("UTC" when none was given).
    pub time_zone: String,
    pub buckets: Vec<Kpis>,
}

impl Stats {
    /// The KPI series of the running service, for `StatsService.GetKpiSeries`.
    pub async fn series(&self, query: &SeriesQuery) -> Result<Series> {
        let skills = faq_skills(&self.knowledge.current().base);
        series(&*self.store, query, &self.config.kpi, &skills, self.now()).await
    }
}

/// Checks the query, reads the range's records from `store` once and computes every bucket.
pub async fn series(
    store: &dyn Store,
    query: &SeriesQuery,
    targets: &KpiConfig,
    faq_skills: &HashMap<String, String>,
    now: i64,
) -> Result<Series> {
    check_query(&query.kpi)?;
    let (time_zone, zone) = time_zone(&query.time_zone)?;
    let bounds = boundaries(query.kpi.start, query.kpi.end, query.granularity, &zone)?;
    let records = store.stats_records(&query.kpi.scope(faq_skills), StatsDetail::Rates).await?;
    let buckets = split(records, &bounds)
        .into_iter()
        .zip(bounds.windows(2))
        .map(|(records, range)| {
            let bucket = KpiQuery { start: range[0], end: range[1], ..query.kpi.clone() };
            let mut kpis = compute(records, &bucket, targets, now);
            kpis.top_intents.clear();
            kpis.knowledge_gaps.clear();
            kpis
        })
        .collect();
    Ok(Series { query: query.clone(), time_zone, buckets })
}

/// The named time zone (UTC when the name is empty), with its name.
fn time_zone(name: &str) -> Result<(String, TimeZone)> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(("UTC".to_owned(), TimeZone::UTC));
    }
    let zone = TimeZone::get(name).map_err(|_| {
        Error::invalid("time_zone", format!("{name:?} is not an IANA time zone such as Europe/Amsterdam"))
    })?;
    Ok((name.to_owned(), zone))
}

fn zoned(millis: i64, field: &'static str, zone: &TimeZone) -> Result<Zoned> {
    let time = Timestamp::from_millisecond(millis).map_err(|_| Error::invalid(field, "out of the supported years"))?;
    Ok(time.to_zoned_datetime(zone.clone()))
}

/// The start of the hour or day of `time`, and the start of the next one, in `time`'s zone.
fn bucket_of(time: &Zoned, granularity: Granularity) -> Option<(Zoned, Zoned)> {
    match granularity {
        Granularity::Hour => {
            let start = time.round(ZonedRound::new().smallest(Unit::Hour).mode(RoundMode::Trunc)).ok()?;
            let next = start.checked_add(1.hour()).ok()?;
            Some((start, next))
        }
        Granularity::Day => {
            let start = time.start_of_day().ok()?;
            let next = time.tomorrow().ok()?.start_of_day().ok()?;
            Some((start, next))
        }
    }
}

/// The buckets' edges, `start` first and `end` last: each hour or day of the zone that meets `[start, end)`, the
/// first and last cut to the range. More than [`MAX_BUCKETS`] is INVALID_ARGUMENT.
pub fn boundaries(start: i64, end: i64, granularity: Granularity, zone: &TimeZone) -> Result<Vec<i64>> {
    let too_long = || {
        let unit = match granularity {
            Granularity::Hour => "hours",
            Granularity::Day => "days",
        };
        Error::invalid(
            "start_time",
            format!("the range covers more than {MAX_BUCKETS} {unit}: choose a shorter range or longer buckets"),
        )
    };
    let mut bounds = vec![start];
    let mut at = zoned(start, "start_time", zone)?;
    zoned(end, "end_time", zone)?;
    while *bounds.last().expect("bounds start with start") < end {
        if bounds.len() > MAX_BUCKETS {
            return Err(too_long());
        }
        let (_, next) = bucket_of(&at, granularity).ok_or_else(too_long)?;
        let last = *bounds.last().expect("bounds start with start");
        // A boundary always moves forward, whatever a zone's transitions do to the calendar.
        let next_millis = next.timestamp().as_millisecond().max(last + 1).min(end);
        bounds.push(next_millis);
        at = zoned(next_millis, "end_time", zone)?;
    }
    Ok(bounds)
}

/// The records of each bucket: a conversation goes to the bucket it started in, its hand-offs with it.
fn split(records: StatsRecords, bounds: &[i64]) -> Vec<StatsRecords> {
    let count = bounds.len() - 1;
    let bucket_of = |started: i64| bounds[1..].partition_point(|edge| *edge <= started).min(count - 1);
    let mut buckets: Vec<StatsRecords> = (0..count).map(|_| StatsRecords::default()).collect();
    for conversation in records.conversations {
        buckets[bucket_of(conversation.created_at)].conversations.push(conversation);
    }
    for handoff in records.handoffs {
        buckets[bucket_of(handoff.conversation_created_at)].handoffs.push(handoff);
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn amsterdam() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").unwrap()
    }

    #[test]
    fn buckets_follow_the_zones_hours_and_days_cut_to_the_range() {
        // 2026-03-28 12:30 UTC to 2026-03-30 00:00 UTC: the clocks go forward in Amsterdam on the 29th.
        let start = 1_774_701_000_000;
        let end = 1_774_828_800_000;
        let days = boundaries(start, end, Granularity::Day, &amsterdam()).unwrap();
        // Cut start; midnight of the 29th (UTC+1); midnight of the 30th (UTC+2), a 23-hour day; the cut end.
        assert_eq!(days, vec![start, 1_774_738_800_000, 1_774_738_800_000 + 23 * HOUR, end]);
        let hours = boundaries(start, start + 2 * HOUR, Granularity::Hour, &TimeZone::UTC).unwrap();
        assert_eq!(hours, vec![start, start + HOUR / 2, start + 3 * HOUR / 2, start + 2 * HOUR]);
        let one = boundaries(start, start + 1, Granularity::Day, &TimeZone::UTC).unwrap();
        assert_eq!(one, vec![start, start + 1]);
    }

    #[test]
    fn too_many_buckets_name_the_range() {
        let error = boundaries(0, 3650 * DAY, Granularity::Day, &TimeZone::UTC).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument { field: "start_time", .. }), "{error:?}");
        assert!(boundaries(0, 101 * DAY, Granularity::Hour, &TimeZone::UTC).is_err());
        assert_eq!(boundaries(0, 100 * DAY - 1, Granularity::Hour, &TimeZone::UTC).unwrap().len(), MAX_BUCKETS + 1);
    }

    #[test]
    fn an_unknown_time_zone_is_named() {
        let error = time_zone("Mars/Olympus").unwrap_err();
        assert!(matches!(error, Error::InvalidArgument { field: "time_zone", .. }), "{error:?}");
        assert_eq!(time_zone("").unwrap().0, "UTC");
    }
}
