//! KPI series and queues (`StatsService.GetKpiSeries`, `GetQueueSnapshot`): conversations seeded through the public
//! API on a manual clock over two days, then every bucket compared with `GetKpis` over the bucket's range (the
//! same computation, so they must be equal), with filters and a time zone; bad ranges, granularities, zones and
//! roles refused with the field named; the queue per skill now.

use loket::server::pb::stats_service_client::StatsServiceClient;
use loket::server::pb::{self, Granularity};
use prost_types::Timestamp;
use tonic::Code;

use crate::harness::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn time(millis: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as i32 })
}

fn millis(time: &Option<Timestamp>) -> i64 {
    let time = time.as_ref().unwrap();
    time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
}

/// The filters of `series` as a GetKpis request over `[start, end)`.
fn kpis_request(series: &pb::GetKpiSeriesRequest, start: i64, end: i64) -> pb::GetKpisRequest {
    pb::GetKpisRequest {
        start_time: time(start),
        end_time: time(end),
        channel: series.channel,
        tier: series.tier,
        language: series.language.clone(),
        skill: series.skill.clone(),
    }
}

/// Asserts that every bucket of the series equals GetKpis over the bucket's range (a bucket leaves out the top
/// lists), that the buckets cover the range without gap, and that they add up to GetKpis over the whole range.
async fn assert_series_is_getkpis(stats: &mut StatsServiceClient<Authed>, request: pb::GetKpiSeriesRequest) -> usize {
    let series = stats.get_kpi_series(request.clone()).await.unwrap().into_inner();
    let (start, end) = (millis(&series.start_time), millis(&series.end_time));
    let mut at = start;
    let mut contacts = 0;
    let mut handoffs = 0;
    for bucket in &series.buckets {
        let kpis = bucket.kpis.as_ref().unwrap();
        assert_eq!(millis(&kpis.start_time), at, "buckets follow each other");
        at = millis(&kpis.end_time);
        let mut expected = stats.get_kpis(kpis_request(&request, millis(&kpis.start_time), at)).await.unwrap();
        let expected = expected.get_mut();
        expected.top_intents.clear();
        expected.top_knowledge_gaps.clear();
        assert_eq!(kpis, expected);
        contacts += kpis.contacts;
        handoffs += kpis.handoffs;
    }
    assert_eq!(at, end, "the last bucket ends the range");
    let whole = stats.get_kpis(kpis_request(&request, start, end)).await.unwrap().into_inner();
    assert_eq!((contacts, handoffs), (whole.contacts, whole.handoffs));
    series.buckets.len()
}

#[tokio::test]
async fn a_series_is_getkpis_bucket_by_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let mut stats = server.stats().await;
    let t0 = WEDNESDAY_10AM; // 09:00 UTC

    // Day one: an answer; a hand-off claimed after 60 s, resolved and rated 5; one claimed after 300 s.
    let answered = start_conversation(&mut chat, "nl").await;
    send(&mut chat, &conversation_id(&answered), "hoe stuur ik een artikel retour").await;
    let mut handoff_ids = Vec::new();
    for customer in ["day1-a", "day1-b"] {
        let (id, _, _) = ask_for_a_person(&mut chat, customer).await;
        let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
        handoff_ids.push((id.clone(), list.handoffs.into_iter().find(|h| h.conversation_id == id).unwrap().handoff_id));
    }
    server.clock.advance(60_000);
    let claim = |handoff_id: &str| pb::ClaimHandoffRequest { handoff_id: handoff_id.into(), agent_id: String::new() };
    agent.claim_handoff(claim(&handoff_ids[0].1)).await.unwrap();
    server.clock.advance(240_000);
    agent.claim_handoff(claim(&handoff_ids[1].1)).await.unwrap();
    let resolve = pb::ResolveHandoffRequest { handoff_id: handoff_ids[0].1.clone(), ..Default::default() };
    agent.resolve_handoff(resolve).await.unwrap();
    let rating =
        pb::RateConversationRequest { conversation_id: handoff_ids[0].0.clone(), score: 5, comment: "".into() };
    chat.rate_conversation(rating).await.unwrap();
    // Day two (UTC), 15:00 in Amsterdam: an English answer, a clarifying question, a question nobody answers.
    server.clock.advance(DAY + 5 * HOUR);
    let english = start_conversation(&mut chat, "en").await;
    send(&mut chat, &conversation_id(&english), "how long do i have to return something").await;
    let vague = start_conversation(&mut chat, "nl").await;
    assert_eq!(kind(&send(&mut chat, &conversation_id(&vague), "retour").await), pb::DecisionKind::Clarify);
    let unknown = start_conversation(&mut chat, "en").await;
    let gap = send(&mut chat, &conversation_id(&unknown), "can my dog come into your store with me").await;
    assert_eq!(kind(&gap), pb::DecisionKind::Handoff);
    server.clock.advance(90_000);
    let now = t0 + DAY + 5 * HOUR + 390_000;

    // One bucket over part of one day equals GetKpis over the same range.
    let part = pb::GetKpiSeriesRequest {
        start_time: time(t0 - HOUR),
        end_time: time(t0 + 2 * HOUR),
        granularity: Granularity::Day.into(),
        ..Default::default()
    };
    assert_eq!(assert_series_is_getkpis(&mut stats, part.clone()).await, 1);
    let one = stats.get_kpi_series(part).await.unwrap().into_inner();
    let kpis = one.buckets[0].kpis.as_ref().unwrap();
    assert_eq!((kpis.contacts, kpis.handoffs, kpis.wait_until_claim.as_ref().unwrap().count), (3, 2, 2));
    assert_eq!((one.granularity(), one.time_zone.as_str()), (Granularity::Day, "UTC"));

    // Days and hours, whole and filtered, in UTC and Amsterdam's time.
    let range = pb::GetKpiSeriesRequest { start_time: time(t0 - DAY), end_time: time(now + 1), ..Default::default() };
    assert_eq!(assert_series_is_getkpis(&mut stats, range.clone()).await, 3, "the default is DAY");
    let hours = pb::GetKpiSeriesRequest { granularity: Granularity::Hour.into(), ..range.clone() };
    assert_eq!(assert_series_is_getkpis(&mut stats, hours).await, 24 + 24 + 6);
    for filtered in [
        pb::GetKpiSeriesRequest { skill: "returns".into(), ..range.clone() },
        pb::GetKpiSeriesRequest { language: "en".into(), ..range.clone() },
        pb::GetKpiSeriesRequest { channel: pb::Channel::Email.into(), ..range.clone() },
    ] {
        assert_series_is_getkpis(&mut stats, filtered).await;
    }
    let amsterdam = pb::GetKpiSeriesRequest { time_zone: "Europe/Amsterdam".into(), ..range.clone() };
    assert_series_is_getkpis(&mut stats, amsterdam.clone()).await;
    let local = stats.get_kpi_series(amsterdam).await.unwrap().into_inner();
    // Midnight in Amsterdam (UTC+1 in November) is 23:00 UTC: the second bucket starts 10 hours before t0.
    assert_eq!(millis(&local.buckets[1].kpis.as_ref().unwrap().start_time), t0 - 10 * HOUR);
    assert_eq!(local.time_zone, "Europe/Amsterdam");

    // The queue now: the unanswered question waits for the default skill.
    let snapshot = stats.get_queue_snapshot(pb::GetQueueSnapshotRequest {}).await.unwrap().into_inner();
    assert_eq!(millis(&snapshot.time), now);
    let general = snapshot.queues.iter().find(|q| q.skill == "general").expect("the default skill is listed");
    assert_eq!((general.waiting, general.oldest_wait_seconds), (1, 90.0));
    let returns = snapshot.queues.iter().find(|q| q.skill == "returns").expect("every known skill is listed");
    assert_eq!((returns.waiting, returns.oldest_wait_seconds), (0, 0.0));
    server.stop().await;
}

/// The fields a refusal names.
fn fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let details = status.get_details_bad_request().expect("bad request details");
    details.field_violations.into_iter().map(|v| v.field).collect()
}

#[tokio::test]
async fn bad_series_requests_name_the_field_and_wrong_roles_are_refused() {
    let (server, _dir) = fresh_server().await;
    let mut stats = server.stats().await;
    let t0 = WEDNESDAY_10AM;
    let range = pb::GetKpiSeriesRequest { start_time: time(t0 - DAY), end_time: time(t0), ..Default::default() };
    let cases = [
        (pb::GetKpiSeriesRequest { start_time: time(t0), end_time: time(t0 - 1), ..range.clone() }, "start_time"),
        (pb::GetKpiSeriesRequest { start_time: time(t0 - 3650 * DAY), ..range.clone() }, "start_time"),
        (
            pb::GetKpiSeriesRequest {
                granularity: Granularity::Hour.into(),
                start_time: time(t0 - 101 * DAY),
                ..range.clone()
            },
            "start_time",
        ),
        (pb::GetKpiSeriesRequest { granularity: 7, ..range.clone() }, "granularity"),
        (pb::GetKpiSeriesRequest { time_zone: "Mars/Olympus Mons".into(), ..range.clone() }, "time_zone"),
        (pb::GetKpiSeriesRequest { channel: 42, ..range.clone() }, "channel"),
        (pb::GetKpiSeriesRequest { end_time: time(i64::MAX / 2), ..range.clone() }, "end_time"),
    ];
    for (request, field) in cases {
        let status = stats.get_kpi_series(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(fields(&status), vec![field.to_string()], "{request:?}: {}", status.message());
    }
    // A hundred days by the hour is the most; a year by the day is fine.
    let hundred = pb::GetKpiSeriesRequest {
        granularity: Granularity::Hour.into(),
        start_time: time(t0 - 100 * DAY),
        ..range.clone()
    };
    assert_eq!(stats.get_kpi_series(hundred).await.unwrap().into_inner().buckets.len(), 2400);
    let year = pb::GetKpiSeriesRequest { start_time: time(t0 - 365 * DAY), ..range.clone() };
    assert_eq!(stats.get_kpi_series(year).await.unwrap().into_inner().buckets.len(), 366);

    // Editors and administrators read KPIs; a front-end or an agent does not.
    let admin = StatsServiceClient::new(server.authed(&server.keys.admin).await).get_kpi_series(range.clone()).await;
    assert!(admin.is_ok());
    for key in [&server.keys.client, &server.keys.agent] {
        let mut other = StatsServiceClient::new(server.authed(key).await);
        assert_eq!(other.get_kpi_series(range.clone()).await.unwrap_err().code(), Code::PermissionDenied);
        let queues = other.get_queue_snapshot(pb::GetQueueSnapshotRequest {}).await.unwrap_err();
        assert_eq!(queues.code(), Code::PermissionDenied);
    }
    server.stop().await;
}

/// A small mix on `server`'s clock: answers, a hand-off claimed after 45 s, resolved and rated 4, one waiting, a
/// question nobody answers; the next day a clarifying question. Returns GetKpis and the hourly series over both
/// days.
async fn mix(server: &TestServer) -> (pb::Kpis, pb::KpiSeries) {
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let answered = start_conversation(&mut chat, "nl").await;
    send(&mut chat, &conversation_id(&answered), "hoe stuur ik een artikel retour").await;
    let (rated, _, _) = ask_for_a_person(&mut chat, "mix-rated").await;
    ask_for_a_person(&mut chat, "mix-waiting").await;
    let unknown = start_conversation(&mut chat, "en").await;
    send(&mut chat, &conversation_id(&unknown), "can my dog come into your store with me").await;
    server.clock.advance(45_000);
    let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff_id = list.handoffs.into_iter().find(|h| h.conversation_id == rated).unwrap().handoff_id;
    agent
        .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() })
        .await
        .unwrap();
    agent.resolve_handoff(pb::ResolveHandoffRequest { handoff_id, ..Default::default() }).await.unwrap();
    let rating = pb::RateConversationRequest { conversation_id: rated, score: 4, comment: "".into() };
    chat.rate_conversation(rating).await.unwrap();
    server.clock.advance(DAY);
    let vague = start_conversation(&mut chat, "nl").await;
    send(&mut chat, &conversation_id(&vague), "retour").await;
    server.clock.advance(1000);
    let range = pb::GetKpiSeriesRequest {
        start_time: time(WEDNESDAY_10AM - HOUR),
        end_time: time(WEDNESDAY_10AM + DAY + HOUR),
        granularity: Granularity::Hour.into(),
        ..Default::default()
    };
    let mut stats = server.stats().await;
    let kpis = stats.get_kpis(kpis_request(&range, WEDNESDAY_10AM - HOUR, WEDNESDAY_10AM + DAY + HOUR)).await;
    (kpis.unwrap().into_inner(), stats.get_kpi_series(range).await.unwrap().into_inner())
}

#[tokio::test]
async fn postgresql_and_sqlite_give_the_same_series_and_forget_an_erased_customer_alike() {
    let Some(database) = crate::postgres::TestPostgres::start() else { return };
    let store = loket::store::PgStore::connect(&database.url, 4, std::time::Duration::from_secs(1)).await.unwrap();
    let (pg_dir, sqlite_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_postgres = TestServer::start_on(test_config(pg_dir.path()), std::sync::Arc::new(store)).await;
    let on_sqlite = TestServer::start(test_config(sqlite_dir.path())).await;
    let (pg, sqlite) = (mix(&on_postgres).await, mix(&on_sqlite).await);
    assert_eq!(pg, sqlite);
    let (kpis, series) = pg;
    assert_eq!((kpis.contacts, kpis.handoffs, kpis.top_knowledge_gaps.len(), series.buckets.len()), (5, 3, 1, 26));
    assert_eq!(kpis.top_knowledge_gaps[0].examples, vec!["can my dog come into your store with me".to_string()]);

    // Erasing a customer takes their turns out of the KPIs on both.
    for server in [&on_postgres, &on_sqlite] {
        let erase = pb::EraseCustomerRequest { customer_id: "mix-rated".into() };
        server.admin().await.erase_customer(erase).await.unwrap();
    }
    let (pg, sqlite) = (mix_after_erasure(&on_postgres).await, mix_after_erasure(&on_sqlite).await);
    assert_eq!(pg, sqlite);
    assert_eq!((pg.contacts, pg.handoffs, pg.csat.as_ref().unwrap().total), (4, 2, 0));
    on_postgres.stop().await;
    on_sqlite.stop().await;
}

async fn mix_after_erasure(server: &TestServer) -> pb::Kpis {
    let request = pb::GetKpisRequest {
        start_time: time(WEDNESDAY_10AM - HOUR),
        end_time: time(WEDNESDAY_10AM + DAY + HOUR),
        ..Default::default()
    };
    server.stats().await.get_kpis(request).await.unwrap().into_inner()
}
