//! KPIs: a known mix of conversations seeded through the public API on a manual clock (answered by the bot, a
//! clarifying question, handed off with known waits, resolved and rated, never claimed), then every KPI of
//! `StatsService.GetKpis` asserted exactly, with filters, breached targets, and `loket stats` on the same data.

use std::collections::BTreeMap;

use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::{self, DecisionKind, HandoffReason, TargetStatus};
use prost_types::Timestamp;
use tonic::Code;

use crate::harness::*;

async fn start(
    chat: &mut ChatServiceClient<Authed>,
    customer: &str,
    language: &str,
    channel: pb::Channel,
    tier: pb::SupportTier,
) -> String {
    let request = pb::StartConversationRequest {
        customer_id: customer.into(),
        tier: tier.into(),
        channel: channel.into(),
        language: language.into(),
        metadata: Default::default(),
        customer_id_signature: String::new(),
    };
    conversation_id(&chat.start_conversation(request).await.unwrap().into_inner())
}

/// What the bot took a message for, as the response shows it: the model's best intent, else search's best entry.
fn detected(response: &pb::SendMessageResponse) -> Option<String> {
    let decision = response.decision.as_ref().unwrap();
    decision
        .intents
        .first()
        .map(|i| i.intent.clone())
        .or_else(|| decision.faq_matches.first().map(|m| m.faq_id.clone()))
}

/// Claims as agent `agent_id`, with that agent's key.
async fn claim(server: &TestServer, handoff_id: &str, agent_id: &str) {
    let request = pb::ClaimHandoffRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into() };
    server.agent_as(agent_id).await.claim_handoff(request).await.unwrap();
}

async fn resolve(server: &TestServer, handoff_id: &str, agent_id: &str) {
    let request =
        pb::ResolveHandoffRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into(), note: "".into() };
    server.agent_as(agent_id).await.resolve_handoff(request).await.unwrap();
}

fn time(millis: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as i32 })
}

fn ratio(r: &Option<pb::Ratio>) -> (i64, i64, f64) {
    let r = r.as_ref().unwrap();
    (r.count, r.total, r.value)
}

fn status(target: &Option<pb::Target>) -> (f64, TargetStatus) {
    let target = target.as_ref().expect("a configured target");
    (target.goal, target.status())
}

fn durations(d: &Option<pb::DurationSummary>) -> (i64, f64, f64, f64, f64) {
    let d = d.as_ref().unwrap();
    (d.count, d.median_seconds, d.p90_seconds, d.max_seconds, d.mean_seconds)
}

/// Ten most frequent, ties by name: the documented order.
fn top(counts: BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.truncate(10);
    counts
}

#[tokio::test]
async fn kpis_of_a_known_mix_of_conversations_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let mut stats = server.stats().await;
    let t0 = WEDNESDAY_10AM;
    let mut intents: BTreeMap<String, i64> = BTreeMap::new();
    let mut gaps: BTreeMap<String, i64> = BTreeMap::new();
    let mut tally = |response: &pb::SendMessageResponse| {
        let decision = response.decision.as_ref().unwrap();
        if let Some(intent) = detected(response)
            && decision.kind() != DecisionKind::Silent
        {
            *intents.entry(intent.clone()).or_default() += 1;
            if matches!(decision.handoff_reason(), HandoffReason::LowConfidence | HandoffReason::RepeatedFailure) {
                *gaps.entry(intent).or_default() += 1;
            }
        }
    };
    use pb::Channel::{Chat, Email};
    use pb::SupportTier::{Basic, Standard};

    // Answered by the bot: one Dutch basic-tier chat, one English e-mail.
    let a = start(&mut chat, "cust-a", "nl", Chat, Basic).await;
    let answered = send(&mut chat, &a, "hoe stuur ik een artikel retour").await;
    assert_eq!(kind(&answered), DecisionKind::Answer);
    tally(&answered);
    let b = start(&mut chat, "cust-b", "en", Email, Standard).await;
    let answered = send(&mut chat, &b, "how long do i have to return something").await;
    assert_eq!(kind(&answered), DecisionKind::Answer);
    tally(&answered);
    // Greeted, never asked anything: a conversation but no contact.
    start(&mut chat, "cust-c", "nl", Chat, Standard).await;
    // A clarifying question, then nothing.
    let h = start(&mut chat, "cust-h", "nl", Chat, Standard).await;
    let clarified = send(&mut chat, &h, "retour").await;
    assert_eq!(kind(&clarified), DecisionKind::Clarify);
    tally(&clarified);
    // A shop question nothing in the FAQ answers: handed off for low confidence, to the default skill. (With the
    // lexicon, "can my parrot come into your store" became a clarifying question offering the showroom entry.)
    let i = start(&mut chat, "cust-i", "en", Chat, Standard).await;
    let unknown = send(&mut chat, &i, "can my dog come into your store with me").await;
    assert_eq!(unknown.decision.as_ref().unwrap().handoff_reason(), HandoffReason::LowConfidence);
    tally(&unknown);
    // Four customers ask for a person after a returns answer: routed to "returns".
    let mut handoffs = Vec::new();
    for customer in ["cust-d", "cust-e", "cust-f", "cust-g"] {
        let id = start(&mut chat, customer, "nl", Chat, Standard).await;
        let answered = send(&mut chat, &id, "hoe stuur ik een artikel retour").await;
        assert_eq!(kind(&answered), DecisionKind::Answer);
        tally(&answered);
        let handed = send(&mut chat, &id, "ik wil een medewerker spreken").await;
        assert_eq!(handed.decision.as_ref().unwrap().handoff_reason(), HandoffReason::CustomerRequest);
        tally(&handed);
        let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
        let handoff = list.handoffs.into_iter().find(|h| h.conversation_id == id).unwrap();
        assert_eq!(handoff.skill, "returns");
        handoffs.push((id, handoff.handoff_id));
    }
    let [(d, hd), (e, he), (_f, hf), (_g, _hg)] = <[_; 4]>::try_from(handoffs).unwrap();

    // Waits until claim: d 60 s, f 100 s, e 180 s; g is never claimed.
    server.clock.advance(60_000);
    claim(&server, &hd, "alice").await;
    server.clock.advance(40_000);
    claim(&server, &hf, "bob").await;
    server.clock.advance(80_000);
    claim(&server, &he, "carol").await;
    // Handle times: d 240 s, e 120 s. Ratings 5 and 2.
    server.clock.advance(120_000);
    resolve(&server, &hd, "alice").await;
    resolve(&server, &he, "carol").await;
    for (id, score) in [(&d, 5), (&e, 2)] {
        let rating = pb::RateConversationRequest { conversation_id: id.clone(), score, comment: String::new() };
        chat.rate_conversation(rating).await.unwrap();
    }
    // Started after the range: not counted.
    let late = start(&mut chat, "cust-late", "nl", Chat, Standard).await;
    send(&mut chat, &late, "ik wil een medewerker spreken").await;

    let range = pb::GetKpisRequest { start_time: time(t0 - 3_600_000), end_time: time(t0 + 1), ..Default::default() };
    let k = stats.get_kpis(range.clone()).await.unwrap().into_inner();
    assert_eq!((k.start_time, k.end_time), (time(t0 - 3_600_000), time(t0 + 1)));
    assert_eq!((k.conversations, k.contacts), (9, 8));
    // Contacts: a, b, h, i, d, e, f, g; handed off: i, d, e, f, g.
    assert_eq!(ratio(&k.deflection), (3, 8, 0.375));
    assert_eq!(status(&k.deflection.as_ref().unwrap().target), (0.7, TargetStatus::Breached));
    assert_eq!(ratio(&k.handoff_rate), (5, 8, 0.625));
    assert_eq!(k.handoffs, 5);
    let reasons: Vec<(HandoffReason, i64)> = k.handoffs_by_reason.iter().map(|r| (r.reason(), r.count)).collect();
    assert_eq!(reasons, vec![(HandoffReason::CustomerRequest, 4), (HandoffReason::LowConfidence, 1)]);
    // Waits 60, 100, 180: median 100, nearest-rank p90 180, mean 113.3.
    assert_eq!(durations(&k.wait_until_claim), (3, 100.0, 180.0, 180.0, 340.0 / 3.0));
    assert_eq!(status(&k.median_wait_target), (120.0, TargetStatus::Met));
    // e waited 180 s; g and i have waited 300 s by now, unclaimed.
    assert_eq!((k.waited_beyond_target, k.unclaimed), (3, 2));
    assert_eq!(durations(&k.handle_time), (2, 180.0, 240.0, 240.0, 180.0));
    assert_eq!(ratio(&k.resolution), (2, 5, 0.4));
    assert_eq!(status(&k.resolution.as_ref().unwrap().target), (0.9, TargetStatus::Breached));
    assert_eq!(k.mean_rating, 3.5);
    assert_eq!(ratio(&k.csat), (1, 2, 0.5));
    assert_eq!(status(&k.csat.as_ref().unwrap().target), (0.85, TargetStatus::Breached));
    assert_eq!(ratio(&k.rating_response), (2, 2, 1.0));
    assert_eq!(ratio(&k.clarification), (1, 8, 0.125));
    assert!(k.clarification.as_ref().unwrap().target.is_none(), "no clarification target is configured");
    let top_intents: Vec<(String, i64)> = k.top_intents.iter().map(|i| (i.intent.clone(), i.count)).collect();
    assert_eq!(top_intents, top(intents));
    let top_gaps: Vec<(String, i64)> = k.top_knowledge_gaps.iter().map(|g| (g.intent.clone(), g.count)).collect();
    assert_eq!(top_gaps, top(gaps));
    assert_eq!(k.top_knowledge_gaps[0].examples, vec!["can my dog come into your store with me".to_string()]);

    // Filters: channel, tier, language, skill.
    let by = |mut request: pb::GetKpisRequest, f: &dyn Fn(&mut pb::GetKpisRequest)| {
        f(&mut request);
        request
    };
    let email = stats.get_kpis(by(range.clone(), &|r| r.channel = Email.into())).await.unwrap().into_inner();
    assert_eq!((email.conversations, ratio(&email.deflection)), (1, (1, 1, 1.0)));
    assert_eq!(status(&email.deflection.as_ref().unwrap().target), (0.7, TargetStatus::Met));
    let basic = stats.get_kpis(by(range.clone(), &|r| r.tier = Basic.into())).await.unwrap().into_inner();
    assert_eq!((basic.conversations, basic.handoffs), (1, 0));
    // Nothing claimed: the wait target cannot be judged.
    assert_eq!(status(&basic.median_wait_target), (120.0, TargetStatus::NoData));
    let english = stats.get_kpis(by(range.clone(), &|r| r.language = "en".into())).await.unwrap().into_inner();
    assert_eq!((english.conversations, ratio(&english.handoff_rate)), (2, (1, 2, 0.5)));
    // "returns": a (answered a returns question) and the four hand-offs; b's entry may be another skill.
    let returns = stats.get_kpis(by(range.clone(), &|r| r.skill = "returns".into())).await.unwrap().into_inner();
    assert_eq!((returns.handoffs, ratio(&returns.resolution)), (4, (2, 4, 0.5)));
    assert!(returns.conversations >= 5 && returns.handoff_rate.as_ref().unwrap().count == 4);
    let general = stats.get_kpis(by(range.clone(), &|r| r.skill = "general".into())).await.unwrap().into_inner();
    assert_eq!((general.conversations, general.handoffs, general.unclaimed), (1, 1, 1));

    // An empty range, a range the wrong way round, an unknown enum.
    let before =
        pb::GetKpisRequest { start_time: time(t0 - 7_200_000), end_time: time(t0 - 3_600_000), ..range.clone() };
    let empty = stats.get_kpis(before).await.unwrap().into_inner();
    assert_eq!((empty.conversations, ratio(&empty.deflection)), (0, (0, 0, 0.0)));
    assert_eq!(status(&empty.deflection.as_ref().unwrap().target), (0.7, TargetStatus::NoData));
    let backwards = pb::GetKpisRequest { start_time: time(t0), end_time: time(t0 - 1), ..Default::default() };
    assert_eq!(stats.get_kpis(backwards).await.unwrap_err().code(), Code::InvalidArgument);
    let bad_channel = pb::GetKpisRequest { channel: 42, ..Default::default() };
    assert_eq!(stats.get_kpis(bad_channel).await.unwrap_err().code(), Code::InvalidArgument);
    // The default range is the week before now (exclusive), which holds every conversation, the late one too.
    server.clock.advance(1);
    let week = stats.get_kpis(pb::GetKpisRequest::default()).await.unwrap().into_inner();
    assert_eq!(week.conversations, 10);
    server.stop().await;

    // `loket stats` computes the same from the database.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["stats", "--since", "2026-11-25T08:00:00Z", "--until", "2026-11-25T09:00:00.001Z", "--data-dir"])
        .arg(dir.path())
        .arg("--knowledge-dir")
        .arg(knowledge_dir())
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{table}{}", String::from_utf8_lossy(&output.stderr));
    // Compared with runs of spaces collapsed: the column widths are presentation.
    let collapsed: Vec<String> = table.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for line in [
        "conversations 9",
        "deflection 37.5% (3/8) target >= 70%: BREACHED",
        "hand-off rate 62.5% (5/8)",
        "hand-offs: customer_request 4",
        "wait until claim median 100 s, p90 180 s, max 180 s (n=3) target <= 120 s: met",
        "handle time median 180 s, mean 180 s (n=2)",
        "resolution 40.0% (2/5) target >= 90%: BREACHED",
        "CSAT (ratings 4-5) 50.0% (1/2) target >= 85%: BREACHED",
        "mean rating 3.50 / 5",
        "rating response rate 100.0% (2/2)",
        "clarification rate 12.5% (1/8)",
        "\"can my dog come into your store with me\"",
    ] {
        assert!(collapsed.iter().any(|l| l == line), "{line:?} missing from:\n{table}");
    }

    // A directory without a database is an error, and stays without one.
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["stats", "--data-dir"])
        .arg(empty.path().join("typo"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no loket database at"));
    assert!(!empty.path().join("typo").exists());
}
