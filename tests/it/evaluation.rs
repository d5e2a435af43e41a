//! The held-out phrasing set (tests/data/heldout.tsv, written independently of the knowledge base) through the
//! gRPC API: top-1 accuracy and out-of-scope answers must stay within the figures stated in README.md.

use std::path::Path;

use loket::dialogue::eval::{self, OUT_OF_SCOPE, read_phrasings};
use loket::knowledge::KnowledgeBase;
use loket::server::pb::DecisionKind;

use crate::harness::*;

#[test]
fn the_shipped_knowledge_base_meets_the_content_bar() {
    let kb = KnowledgeBase::load(&knowledge_dir(), &["nl".into(), "en".into()]).unwrap();
    assert!(kb.faqs.len() >= 40, "{} entries", kb.faqs.len());
    for faq in &kb.faqs {
        for language in ["nl", "en"] {
            let t = &faq.translations[language];
            assert!(t.phrasings.len() >= 6, "{} {language}: {} phrasings", faq.id, t.phrasings.len());
        }
    }
    let categories: std::collections::BTreeSet<_> = kb.faqs.iter().map(|f| f.category.as_str()).collect();
    assert!(categories.len() >= 8, "{categories:?}");
}

#[tokio::test]
async fn heldout_phrasings_through_the_api() {
    let phrasings = read_phrasings(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/heldout.tsv")).unwrap();
    let in_scope_total = phrasings.iter().filter(|p| p.expected != OUT_OF_SCOPE).count();
    assert!(in_scope_total >= 150 && phrasings.len() - in_scope_total >= 30);

    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let (mut correct, mut wrong, mut oos_answered, mut oos_declined) = (0, 0, 0, 0);
    for phrasing in &phrasings {
        let id = conversation_id(&start_conversation(&mut chat, &phrasing.language).await);
        let response = send(&mut chat, &id, &phrasing.text).await;
        let answered = (kind(&response) == DecisionKind::Answer).then(|| top_faq(&response));
        if phrasing.expected == OUT_OF_SCOPE && kind(&response) == DecisionKind::OffTopic {
            oos_declined += 1;
        }
        match answered {
            Some(_) if phrasing.expected == OUT_OF_SCOPE => oos_answered += 1,
            Some(faq) if faq == phrasing.expected => correct += 1,
            Some(_) => wrong += 1,
            None => {}
        }
    }
    let accuracy = correct as f64 / in_scope_total as f64;
    eprintln!(
        "held-out: top-1 {accuracy:.3} ({correct}/{in_scope_total}), wrong {wrong}, out-of-scope answered {oos_answered}, \
         declined {oos_declined}"
    );
    // A floor a little under the measured figure in README.md, so a regression fails this test.
    assert!(accuracy >= FLOOR_TOP1, "top-1 accuracy {accuracy:.3}");
    assert_eq!(oos_answered, 0, "out-of-scope phrasings must never get an FAQ answer");
    // Issue 20's target: the clearly off-topic ones are declined, not queued for a person.
    assert!(oos_declined >= FLOOR_OOS_DECLINED, "{oos_declined} out-of-scope phrasings declined");
}

/// Of heldout.tsv's 43 out-of-scope phrasings, 36 were declined when the rule was set and 38 with the refit model (the others are product
/// advice or a job at the shop, which a person may take, and two clarifying questions).
const FLOOR_OOS_DECLINED: usize = 35;

const FLOOR_TOP1: f64 = 0.84;

/// The shipped knowledge base, model and default policy, as `loket eval` loads them.
fn shipped()
-> (&'static Path, loket::knowledge::Knowledge, std::sync::Arc<loket::intent::IntentModel>, loket::dialogue::Policy) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = loket::config::Config::default();
    let knowledge =
        loket::knowledge::Knowledge::load(&root.join("knowledge-base"), &config.languages.supported).unwrap();
    let model = loket::intent::LiveModel::open(&root.join("models/intent")).current().expect("the shipped model loads");
    (root, knowledge, model, loket::dialogue::Policy::new(config.policy.clone(), config.channels.clone()))
}

/// The intent model must beat search alone on the same phrasings, without answering more wrongly.
#[test]
fn the_intent_model_beats_search_alone() {
    let (root, knowledge, model, policy) = shipped();
    let phrasings = read_phrasings(&root.join("tests/data/heldout.tsv")).unwrap();
    let alone = eval::evaluate(&knowledge, None, &policy, &phrasings);
    let with_model = eval::evaluate(&knowledge, Some(&model), &policy, &phrasings);
    assert!(with_model.answered_correctly > alone.answered_correctly, "{with_model}\nvs\n{alone}");
    assert!(with_model.answered_wrongly <= alone.answered_wrongly, "{with_model}\nvs\n{alone}");
    assert_eq!(with_model.out_of_scope_answered, 0, "{with_model}");
}

/// The scripted conversations (tests/data/conversations.yaml): every turn against its expected decision, through
/// the same policy, language choice and memory as the service.
#[test]
fn scripted_conversations_go_as_expected() {
    let (root, knowledge, model, policy) = shipped();
    let conversations = eval::read_conversations(&root.join("tests/data/conversations.yaml")).unwrap();
    assert!(conversations.len() >= 40);
    for language in ["nl", "en"] {
        assert!(conversations.iter().filter(|c| c.language == language).count() >= 15, "{language}");
    }
    let report = eval::evaluate_conversations(&knowledge, Some(&model), &policy, &conversations);
    eprintln!("{report}");
    for failure in &report.failures {
        eprintln!("  {failure:?}");
    }
    // Floors a little under the figures when the file was written (33/43 conversations, 67/78 turns).
    assert!(report.turns_passed * 100 >= report.turns * 80, "{report}");
    assert!(report.conversations_passed * 100 >= report.conversations * 70, "{report}");
}
