//! `loket.v1.StatsService` adapter.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{channel_from_pb, handoff_reason_to_pb, tier_from_pb, timestamp};
use super::pb;
use super::status::status_of;
use crate::error::Error;
use crate::stats::{Durations, Granularity, KpiQuery, Kpis, Ratio, SeriesQuery, Stats, Target, TargetStatus};

pub struct StatsApi {
    stats: Arc<Stats>,
}

impl StatsApi {
    pub fn new(stats: Arc<Stats>) -> Self {
        Self { stats }
    }
}

fn millis_from_pb(field: &'static str, time: Option<prost_types::Timestamp>) -> Result<Option<i64>, Status> {
    let Some(time) = time else { return Ok(None) };
    if !(0..1_000_000_000).contains(&time.nanos) {
        return Err(status_of(Error::invalid(field, "nanos out of range")));
    }
    time.seconds
        .checked_mul(1000)
        .map(|ms| Some(ms + i64::from(time.nanos) / 1_000_000))
        .ok_or_else(|| status_of(Error::invalid(field, "out of range")))
}

fn target_to_pb(target: Option<Target>) -> Option<pb::Target> {
    target.map(|t| pb::Target {
        goal: t.goal,
        status: match t.status {
            TargetStatus::Met => pb::TargetStatus::Met,
            TargetStatus::Breached => pb::TargetStatus::Breached,
            TargetStatus::NoData => pb::TargetStatus::NoData,
        }
        .into(),
    })
}

fn ratio_to_pb(ratio: &Ratio) -> Option<pb::Ratio> {
    Some(pb::Ratio {
        count: ratio.count as i64,
        total: ratio.total as i64,
        value: ratio.value().unwrap_or(0.0),
        target: target_to_pb(ratio.target),
    })
}

fn durations_to_pb(d: &Durations) -> Option<pb::DurationSummary> {
    Some(pb::DurationSummary {
        count: d.count as i64,
        median_seconds: d.median.unwrap_or(0.0),
        p90_seconds: d.p90.unwrap_or(0.0),
        max_seconds: d.max.unwrap_or(0.0),
        mean_seconds: d.mean.unwrap_or(0.0),
    })
}

fn kpis_to_pb(k: &Kpis) -> pb::Kpis {
    pb::Kpis {
        start_time: timestamp(k.query.start),
        end_time: timestamp(k.query.end),
        conversations: k.conversations as i64,
        contacts: k.contacts as i64,
        deflection: ratio_to_pb(&k.deflection),
        handoff_rate: ratio_to_pb(&k.handoff_rate),
        handoffs: k.handoffs as i64,
        handoffs_by_reason: k
            .handoffs_by_reason
            .iter()
            .map(|(reason, count)| pb::ReasonCount {
                reason: handoff_reason_to_pb(Some(*reason)).into(),
                count: *count as i64,
            })
            .collect(),
        wait_until_claim: durations_to_pb(&k.wait.claimed),
        median_wait_target: target_to_pb(k.wait.median_target),
        waited_beyond_target: k.wait.beyond_target as i64,
        unclaimed: k.wait.unclaimed as i64,
        handle_time: durations_to_pb(&k.handle_time),
        resolution: ratio_to_pb(&k.resolution),
        mean_rating: k.csat.mean_score.unwrap_or(0.0),
        csat: ratio_to_pb(&k.csat.satisfied),
        rating_response: ratio_to_pb(&k.csat.response),
        clarification: ratio_to_pb(&k.clarification),
        off_topic: ratio_to_pb(&k.off_topic),
        top_intents: k
            .top_intents
            .iter()
            .map(|(intent, count)| pb::IntentCount { intent: intent.clone(), count: *count as i64 })
            .collect(),
        top_knowledge_gaps: k
            .knowledge_gaps
            .iter()
            .map(|g| pb::GapByIntent { intent: g.intent.clone(), count: g.count as i64, examples: g.examples.clone() })
            .collect(),
    }
}

/// The range and filters shared by `GetKpis` and `GetKpiSeries`, with the range's defaults filled in.
struct Filters {
    start_time: Option<prost_types::Timestamp>,
    end_time: Option<prost_types::Timestamp>,
    channel: i32,
    tier: i32,
    language: String,
    skill: String,
}

impl StatsApi {
    fn query(&self, filters: Filters) -> Result<KpiQuery, Status> {
        let Filters { start_time, end_time, channel, tier, language, skill } = filters;
        let start = millis_from_pb("start_time", start_time)?;
        let end = millis_from_pb("end_time", end_time)?;
        let (start, end) = KpiQuery::range(start, end, self.stats.now());
        Ok(KpiQuery {
            start,
            end,
            channel: channel_from_pb(channel)?,
            tier: tier_from_pb(tier)?,
            language: Some(language.trim().to_ascii_lowercase()).filter(|l| !l.is_empty()),
            skill: Some(skill.trim().to_owned()).filter(|s| !s.is_empty()),
        })
    }
}

fn granularity_from_pb(value: i32) -> Result<Granularity, Status> {
    match pb::Granularity::try_from(value) {
        Ok(pb::Granularity::Unspecified | pb::Granularity::Day) => Ok(Granularity::Day),
        Ok(pb::Granularity::Hour) => Ok(Granularity::Hour),
        Err(_) => Err(status_of(Error::invalid("granularity", format!("{value} is not a granularity: HOUR or DAY")))),
    }
}

fn granularity_to_pb(granularity: Granularity) -> pb::Granularity {
    match granularity {
        Granularity::Hour => pb::Granularity::Hour,
        Granularity::Day => pb::Granularity::Day,
    }
}

#[tonic::async_trait]
impl pb::stats_service_server::StatsService for StatsApi {
    async fn get_kpis(&self, request: Request<pb::GetKpisRequest>) -> Result<Response<pb::Kpis>, Status> {
        let pb::GetKpisRequest { start_time, end_time, channel, tier, language, skill } = request.into_inner();
        let query = self.query(Filters { start_time, end_time, channel, tier, language, skill })?;
        let kpis = self.stats.kpis(&query).await.map_err(status_of)?;
        Ok(Response::new(kpis_to_pb(&kpis)))
    }

    async fn get_kpi_series(
        &self,
        request: Request<pb::GetKpiSeriesRequest>,
    ) -> Result<Response<pb::KpiSeries>, Status> {
        let pb::GetKpiSeriesRequest { start_time, end_time, granularity, time_zone, channel, tier, language, skill } =
            request.into_inner();
        let granularity = granularity_from_pb(granularity)?;
        let kpi = self.query(Filters { start_time, end_time, channel, tier, language, skill })?;
        let series = self.stats.series(&SeriesQuery { kpi, granularity, time_zone }).await.map_err(status_of)?;
        Ok(Response::new(pb::KpiSeries {
            start_time: timestamp(series.query.kpi.start),
            end_time: timestamp(series.query.kpi.end),
            granularity: granularity_to_pb(series.query.granularity).into(),
            time_zone: series.time_zone,
            buckets: series.buckets.iter().map(|kpis| pb::KpiBucket { kpis: Some(kpis_to_pb(kpis)) }).collect(),
        }))
    }

    async fn get_queue_snapshot(
        &self,
        _request: Request<pb::GetQueueSnapshotRequest>,
    ) -> Result<Response<pb::QueueSnapshot>, Status> {
        let (now, queues) = self.stats.queues().await.map_err(status_of)?;
        Ok(Response::new(pb::QueueSnapshot {
            time: timestamp(now),
            queues: queues
                .into_iter()
                .map(|(skill, queue)| pb::SkillQueue {
                    skill,
                    waiting: queue.waiting as i64,
                    oldest_wait_seconds: queue.oldest_wait_millis.max(0) as f64 / 1000.0,
                })
                .collect(),
        }))
    }
}
