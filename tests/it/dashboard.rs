//! The service-level dashboard at `/dashboard` in a real browser (Debian's chromium over WebDriver, the harness of
//! `browser.rs`) against a real loket on a loopback port: conversations seeded through the chat and agent APIs
//! (answered, handed off, claimed, resolved, rated, a question nobody answers), then the page's figures compared
//! with `GetKpis` and `GetQueueSnapshot` read through the tonic client for the same range; a bad range shown at the
//! range, a key of the wrong role refused at the key. Says SKIPPED without chromium.

use std::time::Instant;

use loket::server::pb::{self, HandoffReason};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::browser::{Browser, ENTER, create_key, have_browser, on_a_large_stack, ui_texts};
use crate::harness::*;

const DAY: i64 = 24 * 3_600_000;

fn time(millis: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as i32 })
}

/// What the page shows per KPI: `data-kpi` → (`data-value`, `data-status`).
async fn shown(page: &Browser) -> std::collections::BTreeMap<String, (f64, String)> {
    let script = "return [...document.querySelectorAll('[data-kpi]')]\
                  .map(e => [e.dataset.kpi, Number(e.dataset.value), e.dataset.status || '']);";
    let rows = page.run(script, json!([])).await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (row[0].as_str().unwrap().to_owned(), (row[1].as_f64().unwrap(), row[2].as_str().unwrap().to_owned()))
        })
        .collect()
}

/// Sets the range's dates and the granularity (1 hour, 2 day), submits, and waits for the figures.
async fn show(page: &Browser, since: &str, until: &str, granularity: u8) {
    let before = page.run("return document.body.dataset.loaded || '0';", json!([])).await;
    let script = "document.getElementById('since').value = arguments[0];\
                  document.getElementById('until').value = arguments[1];\
                  document.getElementById('granularity').value = String(arguments[2]);";
    page.run(script, json!([since, until, granularity])).await;
    page.click("#filters button[type=submit]").await;
    let loaded = "return (document.body.dataset.loaded || '0') !== arguments[0];";
    page.until("the figures", loaded, json!([before])).await;
}

#[test]
fn the_dashboard_shows_getkpis_figures_refuses_a_bad_range_and_a_wrong_key() {
    if have_browser() {
        on_a_large_stack(dashboard);
    }
}

async fn dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_at(test_config(dir.path()), WEDNESDAY_10AM - 6 * DAY).await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let texts = ui_texts();

    // The six days before: a few answers a day and one hand-off, claimed ever later, resolved and rated.
    for day in 0..6 {
        for _ in 0..(day % 3 + 1) {
            let answered = start_conversation(&mut chat, "en").await;
            send(&mut chat, &conversation_id(&answered), "how long do i have to return something").await;
        }
        let (id, _, _) = ask_for_a_person(&mut chat, &format!("week-{day}")).await;
        let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
        let handoff_id = list.handoffs.into_iter().find(|h| h.conversation_id == id).unwrap().handoff_id;
        let wait = 30_000 + 25_000 * day;
        server.clock.advance(wait);
        agent
            .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() })
            .await
            .unwrap();
        server.clock.advance(300_000);
        agent.resolve_handoff(pb::ResolveHandoffRequest { handoff_id, ..Default::default() }).await.unwrap();
        let rating = pb::RateConversationRequest {
            conversation_id: id,
            score: [5, 4, 5, 3, 5, 4][day as usize],
            comment: "".into(),
        };
        chat.rate_conversation(rating).await.unwrap();
        server.clock.advance(DAY - wait - 300_000);
    }

    // Answered by the bot; three ask for a person (claimed after 60 s and 200 s, both resolved and rated 5 and 2;
    // one waits); a question nobody answers, with markup in it.
    let answered = start_conversation(&mut chat, "nl").await;
    assert_eq!(
        kind(&send(&mut chat, &conversation_id(&answered), "hoe stuur ik een artikel retour").await),
        pb::DecisionKind::Answer
    );
    let mut handed = Vec::new();
    for customer in ["dash-a", "dash-b", "dash-c"] {
        let (id, _, _) = ask_for_a_person(&mut chat, customer).await;
        let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
        handed.push((id.clone(), list.handoffs.into_iter().find(|h| h.conversation_id == id).unwrap().handoff_id));
    }
    let unknown = start_conversation(&mut chat, "en").await;
    let gap = send(&mut chat, &conversation_id(&unknown), "can my dog come into your store with me <b>today</b>").await;
    assert_eq!(gap.decision.as_ref().unwrap().handoff_reason(), HandoffReason::LowConfidence);
    for ((conversation, handoff), (wait, score)) in handed.iter().zip([(60_000, 5), (140_000, 2)]) {
        server.clock.advance(wait);
        let claim = pb::ClaimHandoffRequest { handoff_id: handoff.clone(), agent_id: String::new() };
        agent.claim_handoff(claim).await.unwrap();
        let resolve = pb::ResolveHandoffRequest { handoff_id: handoff.clone(), ..Default::default() };
        agent.resolve_handoff(resolve).await.unwrap();
        let rating = pb::RateConversationRequest { conversation_id: conversation.clone(), score, comment: "".into() };
        chat.rate_conversation(rating).await.unwrap();
    }

    let page = Browser::start(1280, 2000).await;
    let url = format!("http://{}/dashboard", server.addr);
    // A key of the wrong role is refused at the key, by keyboard alone.
    let agent_key = create_key(&server, "dash-agent", pb::Role::Agent, "", &[]).await;
    page.go(&url).await;
    page.until("the sign-in form", "return !document.getElementById('sign-in').hidden;", json!([])).await;
    page.tab_to("#key").await;
    page.keys(&agent_key).await;
    page.keys(ENTER).await;
    let refused =
        page.until("the refusal", "return document.getElementById('key-error').textContent;", json!([])).await;
    assert_eq!(refused, json!(texts["en"]["dashboard_not_allowed"]));
    assert_eq!(page.run("return document.getElementById('board').hidden;", json!([])).await, json!(true));

    // An editor's key opens the board.
    page.tab_to("#key").await;
    page.keys(&server.keys.editor).await;
    page.keys(ENTER).await;
    page.until("the first figures", "return document.body.dataset.loaded;", json!([])).await;
    page.tab_to("#granularity").await;
    page.tab_to("#filters button[type=submit]").await;

    // The page's day of the seeded conversations (the browser's time zone), and the range it asks for.
    let day = page.run("const d = new Date(arguments[0]); return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');", json!([WEDNESDAY_10AM])).await;
    let day = day.as_str().unwrap().to_owned();
    let bounds = page.run("const [y, m, d] = arguments[0].split('-').map(Number); const s = new Date(y, m - 1, d).getTime(); return [s, s + 86400000];", json!([day])).await;
    let (start, end) = (bounds[0].as_i64().unwrap(), bounds[1].as_i64().unwrap());
    show(&page, &day, &day, 1).await;
    let figures = shown(&page).await;
    let kpis = server
        .stats()
        .await
        .get_kpis(pb::GetKpisRequest { start_time: time(start), end_time: time(end), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((kpis.contacts, kpis.handoffs, kpis.unclaimed), (5, 4, 2), "the seeded mix");
    let ratio = |r: &Option<pb::Ratio>| r.as_ref().unwrap().value;
    let status = |t: &Option<pb::Target>| {
        t.as_ref().unwrap().status().as_str_name().trim_start_matches("TARGET_STATUS_").to_owned()
    };
    let wait = kpis.wait_until_claim.as_ref().unwrap();
    let expected: Vec<(&str, f64, String)> = vec![
        ("conversations", kpis.conversations as f64, String::new()),
        ("contacts", kpis.contacts as f64, String::new()),
        ("deflection", ratio(&kpis.deflection), status(&kpis.deflection.as_ref().unwrap().target)),
        ("handoff_rate", ratio(&kpis.handoff_rate), String::new()),
        ("handoffs", kpis.handoffs as f64, String::new()),
        ("median_wait", wait.median_seconds, status(&kpis.median_wait_target)),
        ("p90_wait", wait.p90_seconds, String::new()),
        ("waited_beyond_target", kpis.waited_beyond_target as f64, String::new()),
        ("unclaimed", kpis.unclaimed as f64, String::new()),
        ("handle_time", kpis.handle_time.as_ref().unwrap().median_seconds, String::new()),
        ("resolution", ratio(&kpis.resolution), status(&kpis.resolution.as_ref().unwrap().target)),
        ("csat", ratio(&kpis.csat), status(&kpis.csat.as_ref().unwrap().target)),
        ("mean_rating", kpis.mean_rating, String::new()),
        ("rating_response", ratio(&kpis.rating_response), String::new()),
        ("clarification", ratio(&kpis.clarification), String::new()),
        ("off_topic", ratio(&kpis.off_topic), String::new()),
        ("reason_customer_request", 3.0, String::new()),
        ("reason_low_confidence", 1.0, String::new()),
    ];
    for (id, value, status) in &expected {
        let (shown_value, shown_status) = figures.get(*id).unwrap_or_else(|| panic!("{id} not shown: {figures:?}"));
        assert!((shown_value - value).abs() < 1e-9, "{id}: page {shown_value}, GetKpis {value}");
        assert_eq!(shown_status, status, "{id}");
    }
    assert_eq!(figures.len(), expected.len(), "{figures:?}");
    assert_eq!((wait.median_seconds, figures["csat"].1.as_str()), (130.0, "BREACHED"));

    // The charts: seven, each with a table of the 24 hours for screen readers, whose contacts add up.
    let charts = page.run("return [...document.querySelectorAll('#charts figure')].map(f => f.querySelectorAll('div.sr-only tbody tr').length);", json!([])).await;
    assert_eq!(charts, json!([24, 24, 24, 24, 24, 24, 24]));
    let contacts = page.run("return [...document.querySelectorAll('#charts figure:first-child tbody td')].reduce((sum, td) => sum + Number(td.textContent), 0);", json!([])).await;
    assert_eq!(contacts, json!(kpis.contacts));
    assert_eq!(
        page.run("return document.querySelector('#charts svg').getAttribute('aria-hidden');", json!([])).await,
        json!("true")
    );

    // The queue per skill, as GetQueueSnapshot says; the gap's example as text, never markup.
    let queues = server.stats().await.get_queue_snapshot(pb::GetQueueSnapshotRequest {}).await.unwrap().into_inner();
    for queue in &queues.queues {
        let cell = page.run("const e = document.querySelector(`[data-queue=\"${arguments[0]}\"]`); return e && Number(e.dataset.value);", json!([queue.skill])).await;
        assert_eq!(cell, json!(queue.waiting), "{}", queue.skill);
    }
    assert!(queues.queues.iter().map(|q| q.waiting).sum::<i64>() == 2);
    let example = page.text("#gaps td.example li").await;
    assert_eq!(example, "can my dog come into your store with me <b>today</b>");
    assert_eq!(page.run("return document.querySelectorAll('#gaps b, #intents b').length;", json!([])).await, json!(0));

    // The week by the day: seven buckets, and the figures of the week as GetKpis has them.
    let week = page.run("const [y, m, d] = arguments[0].split('-').map(Number); const w = new Date(y, m - 1, d - 6); return [w.getFullYear() + '-' + String(w.getMonth() + 1).padStart(2, '0') + '-' + String(w.getDate()).padStart(2, '0'), w.getTime()];", json!([day])).await;
    show(&page, week[0].as_str().unwrap(), &day, 2).await;
    let request =
        pb::GetKpisRequest { start_time: time(week[1].as_i64().unwrap()), end_time: time(end), ..Default::default() };
    let weekly = server.stats().await.get_kpis(request).await.unwrap().into_inner();
    let figures_of_week = shown(&page).await;
    assert_eq!(figures_of_week["contacts"].0, weekly.contacts as f64);
    assert_eq!(figures_of_week["csat"].0, weekly.csat.as_ref().unwrap().value);
    assert_eq!(figures_of_week["median_wait"].0, weekly.wait_until_claim.as_ref().unwrap().median_seconds);
    assert!(weekly.contacts > kpis.contacts);
    let rows = page
        .run("return document.querySelectorAll('#charts figure:first-child div.sr-only tbody tr').length;", json!([]))
        .await;
    assert_eq!(rows, json!(7));
    assert_eq!(
        page.run("return document.documentElement.scrollWidth <= window.innerWidth;", json!([])).await,
        json!(true),
        "no sideways scrolling"
    );
    page.screenshot("dashboard.png").await;
    show(&page, &day, &day, 1).await;

    // A range the wrong way round, and one too long for hours: said at the range, nothing else changed.
    show(&page, &day, "2026-11-01", 2).await;
    let error = page.text("#range-error").await;
    assert!(
        error.starts_with(texts["en"]["dashboard_range_backwards"].as_str()) && error.contains("start_time"),
        "{error}"
    );
    assert_eq!(
        page.run("return document.getElementById('since').getAttribute('aria-invalid');", json!([])).await,
        json!("true")
    );
    assert_eq!(shown(&page).await, figures, "the figures shown stay those of the last good range");
    show(&page, "2026-01-01", &day, 1).await;
    let error = page.text("#range-error").await;
    assert!(error.starts_with(texts["en"]["dashboard_range_too_long"].as_str()), "{error}");
    show(&page, &day, &day, 2).await;
    assert_eq!(page.text("#range-error").await, "");

    // Interactive: a reload with the key in the tab, until the figures are drawn.
    let started = Instant::now();
    page.reload().await;
    page.until("the reloaded figures", "return document.body.dataset.readyMs;", json!([])).await;
    let wall = started.elapsed();
    let in_page: Value = page.run("return Number(document.body.dataset.readyMs);", json!([])).await;
    println!(
        "dashboard interactive after a reload: {in_page} ms in the page (navigation start to figures drawn), {} ms by WebDriver",
        wall.as_millis()
    );

    // The queue refreshes itself: one more customer asks for a person, and the table shows three waiting with no
    // reload and no click.
    let total =
        "return [...document.querySelectorAll('[data-queue]')].reduce((n, e) => n + Number(e.dataset.value), 0);";
    assert_eq!(page.run(total, json!([])).await, json!(2));
    ask_for_a_person(&mut chat, "dash-d").await;
    let three = format!("return ({}) === 3;", &total["return ".len()..total.len() - 1]);
    page.until("the queue table to refresh itself", &three, json!([])).await;
    drop(page);
    server.stop().await;
}
