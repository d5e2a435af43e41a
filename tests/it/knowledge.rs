//! Live knowledge editing through KnowledgeService: an edit is answered by the very next message, revisions
//! guard against lost updates, imports are all-or-nothing, gaps are collected and closed, and a background
//! retrain swaps the model under load without a failed request.

use std::collections::HashMap;
use std::time::Duration;

use loket::server::pb::{self, DecisionKind};
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::*;

fn translation(question: &str, phrasings: &[&str], answer: &str) -> pb::FaqTranslation {
    pb::FaqTranslation {
        question: question.into(),
        phrasings: phrasings.iter().map(|p| p.to_string()).collect(),
        answer: answer.into(),
    }
}

/// A topic the shipped knowledge base does not cover.
pub fn gift_cards() -> pb::Faq {
    pb::Faq {
        id: "gift-cards".into(),
        category: "payment".into(),
        skill: "billing".into(),
        translations: HashMap::from([
            (
                "nl".to_string(),
                translation(
                    "Verkopen jullie cadeaubonnen?",
                    &["kan ik een cadeaubon kopen", "hebben jullie cadeaukaarten", "cadeaubon bestellen"],
                    "Ja, cadeaubonnen van 10 tot 150 euro koop je op de pagina Cadeaubonnen.",
                ),
            ),
            (
                "en".to_string(),
                translation(
                    "Do you sell gift cards?",
                    &["can i buy a gift card", "do you have gift vouchers", "order a gift card"],
                    "Yes, gift cards from 10 to 150 euros are sold on the Gift cards page.",
                ),
            ),
        ]),
        ..Default::default()
    }
}

async fn create(server: &TestServer, faq: pb::Faq) -> pb::Faq {
    let mut knowledge = server.knowledge().await;
    knowledge
        .create_faq(pb::CreateFaqRequest { faq: Some(faq), author: "editor-anna".into() })
        .await
        .expect("create")
        .into_inner()
}

async fn ask(server: &TestServer, language: &str, text: &str) -> pb::SendMessageResponse {
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, language).await);
    send(&mut chat, &id, text).await
}

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_created_faq_is_answered_by_the_very_next_message_then_updated_then_retired() {
    let (server, _dir) = fresh_server().await;
    let question = "I would like to buy a gift card for my sister";
    let before = ask(&server, "en", question).await;
    assert_ne!(top_faq(&before), "gift-cards");

    let created = create(&server, gift_cards()).await;
    assert_eq!(created.revision, 1);
    assert_eq!(created.updated_by, "editor-anna");
    let after = ask(&server, "en", question).await;
    assert_eq!(kind(&after), DecisionKind::Answer, "{:?}", after.decision);
    assert_eq!(after.replies[0].faq_id, "gift-cards");
    let dutch = ask(&server, "nl", "ik wil graag een cadeaubon kopen").await;
    assert_eq!(dutch.replies[0].faq_id, "gift-cards", "{:?}", dutch.decision);

    // Update the answer: the next message gets the new text.
    let mut knowledge = server.knowledge().await;
    let mut changed = gift_cards();
    changed.translations.get_mut("en").unwrap().answer = "Gift cards are sold in every store and online.".into();
    changed.revision = 1;
    let updated = knowledge
        .update_faq(pb::UpdateFaqRequest {
            faq: Some(changed.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["translations".into()] }),
            author: "editor-bob".into(),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.revision, 2);
    let answered = ask(&server, "en", question).await;
    assert_eq!(answered.replies[0].text, "Gift cards are sold in every store and online.");

    // A second update based on the old revision loses, with ABORTED.
    let stale = knowledge
        .update_faq(pb::UpdateFaqRequest { faq: Some(changed), update_mask: None, author: "editor-carl".into() })
        .await
        .expect_err("stale revision");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    // Retire it: no longer answered, still readable with its history.
    let retired = knowledge
        .delete_faq(pb::DeleteFaqRequest { id: "gift-cards".into(), revision: 2, author: "editor-anna".into() })
        .await
        .expect("delete")
        .into_inner();
    assert!(retired.retired);
    let gone = ask(&server, "en", question).await;
    assert!(gone.replies.iter().all(|r| r.faq_id != "gift-cards"), "{:?}", gone.decision);
    assert!(gone.decision.unwrap().faq_matches.iter().all(|m| m.faq_id != "gift-cards"));
    let read = knowledge.get_faq(pb::GetFaqRequest { id: "gift-cards".into() }).await.unwrap().into_inner();
    assert!(read.retired);

    let history = knowledge
        .list_revisions(pb::ListRevisionsRequest { faq_id: "gift-cards".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<(String, i64, String)> = history
        .revisions
        .iter()
        .map(|r| (r.action.clone(), r.faq.as_ref().unwrap().revision, r.faq.as_ref().unwrap().updated_by.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("retire".to_string(), 3, "editor-anna".to_string()),
            ("update".to_string(), 2, "editor-bob".to_string()),
            ("create".to_string(), 1, "editor-anna".to_string()),
        ]
    );
    // The id stays taken.
    let again = server
        .knowledge()
        .await
        .create_faq(pb::CreateFaqRequest { faq: Some(gift_cards()), author: String::new() })
        .await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_updates_of_one_revision_let_exactly_one_win() {
    let (server, _dir) = fresh_server().await;
    let original =
        server.knowledge().await.get_faq(pb::GetFaqRequest { id: "return-period".into() }).await.unwrap().into_inner();
    // Connected first, then all sent at once.
    let mut attempts = Vec::new();
    for n in 0..6 {
        let mut faq = original.clone();
        faq.translations.get_mut("en").unwrap().answer = format!("Answer number {n}.");
        attempts.push((server.knowledge().await, faq, n));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(attempts.len()));
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(mut client, faq, n)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let request = pb::UpdateFaqRequest { faq: Some(faq), update_mask: None, author: format!("editor-{n}") };
                client.update_faq(request).await.map(|_| ())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    let aborted = outcomes.iter().filter(|o| o.as_ref().is_err_and(|s| s.code() == Code::Aborted)).count();
    assert_eq!((won, aborted), (1, 5), "{outcomes:?}");
    let now =
        server.knowledge().await.get_faq(pb::GetFaqRequest { id: "return-period".into() }).await.unwrap().into_inner();
    assert_eq!(now.revision, original.revision + 1);
    server.stop().await;
}

#[tokio::test]
async fn invalid_entries_are_rejected_naming_every_field() {
    let (server, _dir) = fresh_server().await;
    let mut knowledge = server.knowledge().await;
    let mut bad = gift_cards();
    bad.translations.remove("nl");
    bad.translations.get_mut("en").unwrap().answer = " ".into();
    bad.translations.get_mut("en").unwrap().phrasings.push("x".repeat(301));
    let status =
        knowledge.create_faq(pb::CreateFaqRequest { faq: Some(bad), author: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violations(&status);
    assert!(fields.contains(&"faq.translations".to_string()), "{fields:?}");
    assert!(fields.contains(&"faq.translations.en.answer".to_string()), "{fields:?}");
    assert!(fields.contains(&"faq.translations.en.phrasings[3]".to_string()), "{fields:?}");

    // A phrasing another entry already teaches.
    let mut clash = gift_cards();
    let existing = knowledge.get_faq(pb::GetFaqRequest { id: "return-period".into() }).await.unwrap().into_inner();
    let taken = existing.translations["en"].phrasings[0].clone();
    clash.translations.get_mut("en").unwrap().phrasings.push(taken.to_uppercase());
    let status =
        knowledge.create_faq(pb::CreateFaqRequest { faq: Some(clash), author: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("also belongs to entry return-period"), "{status:?}");

    let mut bad_id = gift_cards();
    bad_id.id = "Gift Cards!".into();
    let status =
        knowledge.create_faq(pb::CreateFaqRequest { faq: Some(bad_id), author: String::new() }).await.unwrap_err();
    assert_eq!(violations(&status), ["faq.id"]);

    let missing = knowledge.get_faq(pb::GetFaqRequest { id: "no-such-entry".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mask = knowledge
        .update_faq(pb::UpdateFaqRequest {
            faq: Some(existing),
            update_mask: Some(prost_types::FieldMask { paths: vec!["answer".into()] }),
            author: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(mask.code(), Code::InvalidArgument);
    assert_eq!(violations(&mask), ["update_mask"]);
    server.stop().await;
}

#[tokio::test]
async fn an_import_with_one_bad_entry_changes_nothing_and_export_round_trips() {
    let (server, _dir) = fresh_server().await;
    let mut knowledge = server.knowledge().await;
    let exported = knowledge.export_faqs(pb::ExportFaqsRequest {}).await.unwrap().into_inner().files;
    assert!(exported.len() >= 8, "one file per category");
    let count = |client: &mut loket::server::pb::knowledge_service_client::KnowledgeServiceClient<_>| {
        let mut client = client.clone();
        async move {
            client
                .list_faqs(pb::ListFaqsRequest { page_size: 500, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .faqs
                .len()
        }
    };
    let before = count(&mut knowledge).await;

    let good = "category: vouchers\nskill: billing\nentries:\n  - id: gift-cards\n    nl:\n      question: Verkopen jullie cadeaubonnen?\n      phrasings: [cadeaubon kopen, cadeaukaart bestellen]\n      answer: Ja.\n    en:\n      question: Do you sell gift cards?\n      phrasings: [buy a gift card, order a gift voucher]\n      answer: Yes.\n";
    let bad = "category: vouchers\nskill: billing\nentries:\n  - id: loyalty\n    nl:\n      question: Hebben jullie een spaarprogramma?\n      phrasings: [punten sparen, spaarkaart]\n      answer: ''\n    en:\n      question: Do you have a loyalty programme?\n      phrasings: [collect points, loyalty card]\n      answer: Yes.\n";
    let files = vec![
        pb::KnowledgeFile { name: "gift.yaml".into(), content: good.into() },
        pb::KnowledgeFile { name: "loyalty.yaml".into(), content: bad.into() },
    ];
    let status = knowledge
        .import_faqs(pb::ImportFaqsRequest { files: files.clone(), replace: false, author: "git".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["files[loyalty.yaml]:4"], "{status:?}");
    assert_eq!(count(&mut knowledge).await, before);
    assert_eq!(
        knowledge.get_faq(pb::GetFaqRequest { id: "gift-cards".into() }).await.unwrap_err().code(),
        Code::NotFound
    );

    // The good file alone imports; importing the export again changes nothing.
    let summary = knowledge
        .import_faqs(pb::ImportFaqsRequest { files: files[..1].to_vec(), replace: false, author: "git".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.created, summary.updated), (1, 0));
    let summary = knowledge
        .import_faqs(pb::ImportFaqsRequest { files: exported.clone(), replace: false, author: "git".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.created, summary.updated, summary.unchanged as usize), (0, 0, before));
    // Replacing with the export retires what it lacks.
    let summary = knowledge
        .import_faqs(pb::ImportFaqsRequest { files: exported, replace: true, author: "git".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.retired, 1);
    assert_eq!(count(&mut knowledge).await, before);
    server.stop().await;
}

#[tokio::test]
async fn list_filters_and_pages() {
    let (server, _dir) = fresh_server().await;
    let mut knowledge = server.knowledge().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = knowledge
            .list_faqs(pb::ListFaqsRequest { page_size: 7, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(page.faqs.len() <= 7);
        seen.extend(page.faqs.into_iter().map(|f| f.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages are in id order without repeats");
    assert!(seen.len() >= 40);

    let found = knowledge
        .list_faqs(pb::ListFaqsRequest { language: "nl".into(), text: "wachtwoord".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .faqs;
    assert!(found.iter().any(|f| f.id == "account-password-reset"), "{found:?}");
    assert!(found.iter().all(|f| f.translations.keys().eq(["nl"])));
    let wrong = knowledge.list_faqs(pb::ListFaqsRequest { language: "fr".into(), ..Default::default() }).await;
    assert_eq!(wrong.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn test_query_explains_without_storing() {
    let (server, _dir) = fresh_server().await;
    let mut knowledge = server.knowledge().await;
    let response = knowledge
        .test_query(pb::TestQueryRequest {
            text: "how long do i have to return something".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let decision = response.decision.unwrap();
    assert_eq!(decision.kind(), DecisionKind::Answer);
    assert_eq!(decision.language, "en");
    assert_eq!(decision.answer_faq_id, "return-period");
    assert!(decision.faq_matches.iter().any(|m| m.faq_id == "return-period" && m.score > 0.0));
    assert_eq!(decision.intents[0].intent, "return-period");
    assert!(!decision.explanation.is_empty());
    assert_eq!(response.replies.len(), 1);
    let empty = knowledge.test_query(pb::TestQueryRequest { text: "  ".into(), ..Default::default() }).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await;
}

/// Questions the shipped knowledge base cannot answer.
const UNKNOWN: &[&str] = &[
    "may I bring my parrot into your shop",
    "can i bring my parrot into the shop",
    "is my parrot allowed in your shop",
];

#[tokio::test]
async fn handed_off_questions_become_a_gap_that_closes_when_an_faq_covers_them() {
    let (server, _dir) = fresh_server().await;
    for text in UNKNOWN {
        let response = ask(&server, "en", &format!("{text}? mail me at jan@example.com")).await;
        assert!(matches!(kind(&response), DecisionKind::Handoff | DecisionKind::Clarify), "{:?}", response.decision);
    }
    let mut knowledge = server.knowledge().await;
    let gaps = knowledge.list_knowledge_gaps(pb::ListKnowledgeGapsRequest::default()).await.unwrap().into_inner();
    let gap = gaps.gaps.iter().find(|g| g.examples.iter().any(|e| e.contains("parrot"))).expect("a parrot gap").clone();
    assert_eq!(gap.count, 3, "{gaps:?}");
    assert_eq!(gap.language, "en");
    assert!(gap.examples.iter().all(|e| e.contains("[email]") && !e.contains("jan@")), "redacted: {:?}", gap.examples);

    let mut pets = gift_cards();
    pets.id = "pets-in-store".into();
    pets.category = "contact".into();
    pets.skill = "general".into();
    pets.translations.insert(
        "nl".into(),
        translation(
            "Mag mijn huisdier mee de winkel in?",
            &["huisdier in de winkel", "mag mijn hond mee"],
            "Alleen hulphonden.",
        ),
    );
    pets.translations.insert(
        "en".into(),
        translation(
            "Can I bring my pet into the store?",
            &["pets in the store", "can my dog come along"],
            "Only assistance dogs.",
        ),
    );
    let created = knowledge
        .create_faq_from_gap(pb::CreateFaqFromGapRequest {
            gap_id: gap.id.clone(),
            faq: Some(pets),
            author: "anna".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let phrasings = &created.translations["en"].phrasings;
    assert_eq!(phrasings.len(), 2 + 3, "{phrasings:?}");
    let gaps = knowledge.list_knowledge_gaps(pb::ListKnowledgeGapsRequest::default()).await.unwrap().into_inner();
    assert!(gaps.gaps.iter().all(|g| g.id != gap.id), "closed: {gaps:?}");

    let answered = ask(&server, "en", "may I bring my parrot into your shop?").await;
    assert_eq!(answered.replies[0].faq_id, "pets-in-store", "{:?}", answered.decision);
    server.stop().await;
}

#[tokio::test]
async fn a_gap_attaches_to_an_existing_faq() {
    let (server, _dir) = fresh_server().await;
    let text = "my parcel went to the neighbours and they are on holiday";
    let response = ask(&server, "en", text).await;
    assert_ne!(kind(&response), DecisionKind::Answer, "{:?}", response.decision);
    let mut knowledge = server.knowledge().await;
    let gaps = knowledge.list_knowledge_gaps(pb::ListKnowledgeGapsRequest::default()).await.unwrap().into_inner();
    let gap = gaps.gaps.iter().find(|g| g.examples.iter().any(|e| e == text)).expect("gap").clone();
    let target =
        knowledge.get_faq(pb::GetFaqRequest { id: "delivery-not-received".into() }).await.unwrap().into_inner();
    let stale = knowledge
        .attach_knowledge_gap(pb::AttachKnowledgeGapRequest {
            gap_id: gap.id.clone(),
            faq_id: target.id.clone(),
            revision: target.revision + 5,
            author: "anna".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let attached = knowledge
        .attach_knowledge_gap(pb::AttachKnowledgeGapRequest {
            gap_id: gap.id.clone(),
            faq_id: target.id.clone(),
            revision: target.revision,
            author: "anna".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(attached.translations["en"].phrasings.iter().any(|p| p == text));
    let unknown = knowledge
        .attach_knowledge_gap(pb::AttachKnowledgeGapRequest {
            gap_id: gap.id,
            faq_id: target.id,
            revision: attached.revision,
            author: "anna".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "a closed gap is gone");
    let answered = ask(&server, "en", text).await;
    assert_eq!(answered.replies[0].faq_id, "delivery-not-received", "{:?}", answered.decision);
    server.stop().await;
}

#[tokio::test]
async fn edits_survive_a_restart_and_the_files_do_not_seed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    create(&server, gift_cards()).await;
    let mut knowledge = server.knowledge().await;
    knowledge
        .delete_faq(pb::DeleteFaqRequest { id: "return-period".into(), revision: 0, author: "anna".into() })
        .await
        .unwrap();
    server.stop().await;

    let server = TestServer::start(test_config(dir.path())).await;
    let mut knowledge = server.knowledge().await;
    assert_eq!(
        knowledge.get_faq(pb::GetFaqRequest { id: "gift-cards".into() }).await.unwrap().into_inner().revision,
        1
    );
    assert!(knowledge.get_faq(pb::GetFaqRequest { id: "return-period".into() }).await.unwrap().into_inner().retired);
    let answered = ask(&server, "en", "I would like to buy a gift card for my sister").await;
    assert_eq!(answered.replies[0].faq_id, "gift-cards");
    server.stop().await;
}

#[tokio::test]
async fn a_background_retrain_swaps_the_model_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.knowledge.retrain = true;
    config.knowledge.retrain_delay_ms = 50;
    // Few passes: this is about the swap, not the model's quality (and the test build is unoptimised).
    config.knowledge.retrain_epochs = 2;
    let server = TestServer::start(config).await;
    let mut knowledge = server.knowledge().await;
    let before = knowledge
        .test_query(pb::TestQueryRequest { text: "do you sell gift cards".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(before.decision.unwrap().intents.iter().all(|i| i.intent != "gift-cards"));
    create(&server, gift_cards()).await;

    // Customers keep talking while the model trains and is swapped.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for n in 0..4 {
        let (stop, mut chat) = (stop.clone(), server.chat().await);
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let id = conversation_id(&start_conversation(&mut chat, "en").await);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let request = pb::SendMessageRequest {
                    conversation_id: id.clone(),
                    text: if n % 2 == 0 {
                        "can i buy a gift card".into()
                    } else {
                        "how long do i have to return something".into()
                    },
                    client_message_id: String::new(),
                };
                match chat.send_message(request).await {
                    Ok(_) => ok += 1,
                    Err(status) => failed.push(status),
                }
            }
            (ok, failed)
        }));
    }
    let mut status = pb::RetrainStatus::default();
    for _ in 0..1500 {
        status = knowledge.get_retrain_status(pb::GetRetrainStatusRequest {}).await.unwrap().into_inner();
        if status.completed >= 1 || !status.last_error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status.completed, 1, "{status:?}");
    assert!(status.trained_version > 0);
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(ok > 0);
    }
    let after = knowledge
        .test_query(pb::TestQueryRequest { text: "do you sell gift cards".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(after.decision.unwrap().intents.iter().any(|i| i.intent == "gift-cards"), "the new model knows the entry");
    // A retrain never makes an entry worse: answered by retrieval before it, answered after it, whether the new
    // model learned the entry or left it to retrieval as weak (listed in the status).
    let answered = ask(&server, "en", "Do you sell gift cards?").await;
    assert_eq!(kind(&answered), DecisionKind::Answer, "{answered:?} (weak entries: {:?})", status.weak_entries);
    assert_eq!(answered.replies[0].faq_id, "gift-cards");
    assert!(dir.path().join("intent-model/model.safetensors").exists());
    server.stop().await;
}
