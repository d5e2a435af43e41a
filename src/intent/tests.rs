//! Unit tests: tiny bilingual data set sanity, save/load round trip, determinism, corrupt files, hostile input.

use super::*;
use std::path::PathBuf;
use std::sync::OnceLock;

const OBJECTS: [(&str, &str); 25] = [
    ("password", "wachtwoord"),
    ("invoice", "factuur"),
    ("delivery", "levering"),
    ("subscription", "abonnement"),
    ("address", "adres"),
    ("order", "bestelling"),
    ("payment", "betaling"),
    ("bank card", "bankpas"),
    ("appointment", "afspraak"),
    ("phone number", "telefoonnummer"),
    ("email address", "e-mailadres"),
    ("newsletter", "nieuwsbrief"),
    ("parking permit", "parkeervergunning"),
    ("insurance", "verzekering"),
    ("reservation", "reservering"),
    ("membership", "lidmaatschap"),
    ("profile picture", "profielfoto"),
    ("username", "gebruikersnaam"),
    ("loyalty points", "spaarpunten"),
    ("gift card", "cadeaukaart"),
    ("contract", "contract"),
    ("direct debit", "automatische incasso"),
    ("complaint", "klacht"),
    ("warranty", "garantie"),
    ("energy meter reading", "meterstand"),
];
const ACTIONS: [(&str, &str); 2] = [("change", "wijzigen"), ("cancel", "opzeggen")];
const EN: [&str; 10] = [
    "how do i {a} my {o}",
    "i want to {a} my {o}",
    "can you help me {a} the {o}",
    "{a} {o} please",
    "is it possible to {a} my {o}?",
    "I need to {a} my {o} today",
    "where can i {a} my {o}",
    "please {a} my {o} for me",
    "what is the way to {a} a {o}",
    "help, {a} {o}!",
];
const NL: [&str; 10] = [
    "hoe kan ik mijn {o} {a}",
    "ik wil mijn {o} {a}",
    "kun je me helpen mijn {o} te {a}",
    "{o} {a} graag",
    "is het mogelijk om mijn {o} te {a}?",
    "ik moet vandaag mijn {o} {a}",
    "waar kan ik mijn {o} {a}",
    "wil je mijn {o} {a} alsjeblieft",
    "hoe werkt het {a} van een {o}",
    "help, {o} {a}!",
];
/// Templates never seen in training, to check generalisation rather than memorisation.
const HELD_OUT: [&str; 4] =
    ["could i {a} my {o} online", "{a} the {o}", "graag mijn {o} {a} aub", "mag ik mijn {o} {a}"];

fn fill(t: &str, a: &str, o: &str) -> String {
    t.replace("{a}", a).replace("{o}", o)
}

fn label(ai: usize, oi: usize) -> String {
    format!("{}_{}", ACTIONS[ai].0, OBJECTS[oi].0.replace(' ', "_"))
}

/// 50 intents × 20 examples (10 English, 10 Dutch): the size of the service's own FAQ data.
fn tiny_data() -> (Vec<Example>, Vec<Example>) {
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (ai, (a_en, a_nl)) in ACTIONS.iter().enumerate() {
        for (oi, (o_en, o_nl)) in OBJECTS.iter().enumerate() {
            let l = label(ai, oi);
            train.extend(EN.iter().map(|t| Example { text: fill(t, a_en, o_en), label: l.clone() }));
            train.extend(NL.iter().map(|t| Example { text: fill(t, a_nl, o_nl), label: l.clone() }));
            let (a, o) = ((a_en, o_en), (a_nl, o_nl));
            for (i, t) in HELD_OUT.iter().enumerate() {
                let (aa, oo) = if i < 2 { a } else { o };
                held.push(Example { text: fill(t, aa, oo), label: l.clone() });
            }
        }
    }
    (train, held)
}

fn tiny_cfg() -> TrainConfig {
    TrainConfig { seed: 7, ..TrainConfig::small_data() }
}

/// One shared tiny model: training once keeps `cargo test` quick.
fn tiny_model() -> &'static (IntentModel, TrainReport) {
    static MODEL: OnceLock<(IntentModel, TrainReport)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (train, held) = tiny_data();
        IntentModel::train(&train, &held, None, &tiny_cfg()).expect("tiny training works")
    })
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("intent-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn tiny_bilingual_dataset_trains_fast_and_predicts_sensibly() {
    let start = std::time::Instant::now();
    let (model, report) = tiny_model();
    eprintln!(
        "tiny training took {:.2} s (waited {:.2} s here), report {report:?}",
        report.train_seconds,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(model.labels().len(), 50);
    let (_, held) = tiny_data();
    let ev = evaluate(model, &held, None);
    eprintln!("held-out templates: {ev:?}");
    assert!(ev.in_scope_accuracy >= 0.85, "held-out accuracy too low: {ev:?}");
    let p = model.classify("Kan ik mijn abonnement ook online opzeggen?", 3);
    assert_eq!(p.ranking[0].0, "cancel_subscription");
    // A phrasing the model was taught is in scope (an unseen one may fall in the least confident 5%).
    assert!(!model.classify("ik wil mijn abonnement opzeggen", 3).out_of_scope);
    let p = model.classify("how can I change my password?", 3);
    assert_eq!(p.ranking[0].0, "change_password");
    let sum: f32 = model.classify("factuur", 50).ranking.iter().map(|r| r.1).sum();
    assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
}

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let (model, _) = tiny_model();
    let dir = temp_dir("roundtrip");
    model.save(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "labels.json", "config.json"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let loaded = IntentModel::load(&dir).unwrap();
    assert_eq!(loaded.labels(), model.labels());
    let (train, held) = tiny_data();
    for e in train.iter().chain(&held) {
        assert_eq!(loaded.classify(&e.text, 5), model.classify(&e.text, 5), "{}", e.text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_gives_identical_bytes() {
    let (train, held) = tiny_data();
    let cfg = TrainConfig { members: 2, ..tiny_cfg() };
    let save = |name: &str| {
        let (m, _) = IntentModel::train(&train, &held, None, &cfg).unwrap();
        let dir = temp_dir(name);
        m.save(&dir).unwrap();
        dir
    };
    let (a, b) = (save("det-a"), save("det-b"));
    for f in ["model.safetensors", "tokenizer.json", "labels.json", "config.json"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn corrupt_or_truncated_files_are_errors() {
    let (model, _) = tiny_model();
    let good = temp_dir("corrupt-src");
    model.save(&good).unwrap();
    type Damage = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;
    let cases: Vec<(&str, Damage)> = vec![
        ("model.safetensors", Box::new(|b: Vec<u8>| b[..b.len() / 2].to_vec())),
        ("model.safetensors", Box::new(|b: Vec<u8>| b[..7].to_vec())),
        ("model.safetensors", Box::new(|_| Vec::new())),
        ("model.safetensors", Box::new(|b: Vec<u8>| b.iter().map(|x| x ^ 0x5a).collect())),
        ("tokenizer.json", Box::new(|b: Vec<u8>| b[..b.len() / 3].to_vec())),
        ("labels.json", Box::new(|_| b"[\"only_one\"]".to_vec())),
        ("config.json", Box::new(|b: Vec<u8>| b[..b.len() - 5].to_vec())),
        (
            "config.json",
            Box::new(|b: Vec<u8>| {
                String::from_utf8(b).unwrap().replace("\"embed_dim\": ", "\"embed_dim\": 1").into_bytes()
            }),
        ),
    ];
    for (i, (file, damage)) in cases.iter().enumerate() {
        let dir = temp_dir(&format!("corrupt-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["model.safetensors", "tokenizer.json", "labels.json", "config.json"] {
            let bytes = std::fs::read(good.join(f)).unwrap();
            let bytes = if f == *file { damage(bytes) } else { bytes };
            std::fs::write(dir.join(f), bytes).unwrap();
        }
        let res = std::panic::catch_unwind(|| IntentModel::load(&dir));
        assert!(matches!(res, Ok(Err(_))), "case {i} ({file}) did not give a clean Err");
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(IntentModel::load(&temp_dir("does-not-exist")).is_err());
    let _ = std::fs::remove_dir_all(&good);
}

#[test]
fn hostile_input_never_panics() {
    let (model, _) = tiny_model();
    let huge = "wachtwoord ".repeat(5_000); // ~55 KB
    let inputs = [
        String::new(),
        " \t\n".into(),
        "😀😀🔥🙈".into(),
        "ik wil mijn 密码 сменить password 🔑 تغيير".into(),
        "\u{0}\u{1}\u{7f}\u{200b}\u{feff}".into(),
        "a".repeat(50_000),
        huge,
        "é".repeat(10_000),
    ];
    for text in &inputs {
        for k in [0, 1, 5, 1000] {
            // How fast is the `classify` bench's business (BENCHMARKS.md), not a timed test's.
            let p = model.classify(text, k);
            assert!(p.ranking.len() <= k.min(model.labels().len()));
            assert!(p.ranking.iter().all(|r| r.1.is_finite() && (0.0..=1.0).contains(&r.1)));
        }
    }
}

#[test]
fn bad_training_input_is_an_error() {
    let one = vec![Example { text: "hi".into(), label: "greet".into() }];
    assert!(IntentModel::train(&one, &[], None, &tiny_cfg()).is_err());
    assert!(IntentModel::train(&[], &[], None, &tiny_cfg()).is_err());
    let bad = TrainConfig { embed_dim: 0, ..tiny_cfg() };
    let (train, _) = tiny_data();
    assert!(IntentModel::train(&train, &[], None, &bad).is_err());
}

#[test]
fn without_out_of_scope_examples_the_threshold_keeps_the_configured_share() {
    let (model, report) = tiny_model();
    eprintln!("threshold {} temperature {}", report.threshold, report.temperature);
    let (_, held) = tiny_data();
    let rejected = held.iter().filter(|e| model.classify(&e.text, 1).out_of_scope).count() as f32 / held.len() as f32;
    // The validation set is the held-out templates: 5% of them are rejected, by construction, up to ties.
    assert!((0.02..=0.08).contains(&rejected), "rejected {rejected} of held-out in-scope, expected ~0.05");
    // Text about nothing the model was taught is what the rejected 5% make room for.
    let off_topic = [
        "what is the capital of australia",
        "hoe ver is de maan van de aarde",
        "give me a recipe for lasagne",
        "wie heeft het wk gewonnen",
    ];
    let declined = off_topic.iter().filter(|t| model.classify(t, 1).out_of_scope).count();
    assert!(declined >= 3, "only {declined} of {} off-topic texts rejected", off_topic.len());
}

#[test]
fn keep_share_threshold_rejects_the_least_confident_share() {
    let scores: Vec<f32> = (1..=100).map(|i| i as f32 / 100.0).collect();
    let t = calibrate::keep_share_threshold(&scores, 0.95);
    assert!((0.05..0.06).contains(&t), "{t}");
    assert_eq!(scores.iter().filter(|&&s| s >= t).count(), 95);
    assert!(calibrate::keep_share_threshold(&scores, 1.0) < scores[0], "keeping all rejects nothing");
    assert_eq!(calibrate::keep_share_threshold(&[], 0.95), 0.0);
    assert!(calibrate::keep_share_threshold(&[f32::NAN, 0.5], 0.5).is_finite());
}

#[test]
fn holdout_training_refits_on_every_example_and_keeps_the_calibration() {
    let (train, _) = tiny_data();
    let (model, report) = IntentModel::train_holdout(&train, None, &tiny_cfg()).unwrap();
    assert_eq!(report.n_train, train.len(), "the refit learns from all examples");
    assert_eq!(model.threshold(), report.threshold, "the refit keeps the hold-out's threshold");
    let (_, held) = tiny_data();
    let scored = evaluate(&model, &held, None);
    assert!(scored.in_scope_accuracy_no_reject >= 0.85, "{scored:?}");
    // The threshold is a real one (set on the hold-out, finite) and rejects far from all unseen phrasings. With
    // the lexicon the refit model is sure enough of these in-scope templates that it may reject none of them.
    assert!(model.threshold().is_finite(), "{report:?}");
    assert!(
        scored.in_scope_accuracy <= scored.in_scope_accuracy_no_reject && scored.in_scope_accuracy > 0.5,
        "{scored:?}"
    );
}

#[test]
fn labels_whose_own_examples_the_model_gets_wrong_are_marked_weak() {
    let (train, held) = tiny_data();
    let (mut model, _) = IntentModel::train(&train, &held, None, &tiny_cfg()).unwrap();
    // An entry written with another entry's phrasings (as a careless new entry next to an established one).
    let mut examples: Vec<Example> = train.iter().filter(|e| e.label == "change_password").cloned().collect();
    examples.iter_mut().for_each(|e| e.label = "cancel_password".into());
    examples.extend(train.iter().filter(|e| e.label == "change_invoice").cloned());
    let labels = BTreeSet::from(["cancel_password", "change_invoice"]);
    assert_eq!(model.mark_weak_labels(&examples, &labels, 0.9), ["cancel_password".to_string()]);
    assert!(!model.knows("cancel_password"), "a weak label is not trusted");
    assert!(model.knows("change_invoice"));
    assert!(!model.knows("no_such_label"));
}

#[test]
fn a_csv_with_empty_rows_skips_and_counts_them_and_case_variants_of_a_label_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "text,label\nhello there,greet\n,greet\n  ,bye\nsee you,bye\nbye now,bye\n").unwrap();
    let read = data::read_csv(&good).unwrap();
    assert_eq!(read.examples.len(), 3);
    assert_eq!(read.empty_rows, [3, 4]);
    assert_eq!(read.single_examples, [("greet".to_string(), 2)]);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "text,label\nmy refund,Refund\nwhere is my refund,refund\nno label here,\n").unwrap();
    let message = data::read_csv(&bad).unwrap_err().to_string();
    assert!(message.contains("line 4") && message.contains("differ only in case"), "{message}");
}
