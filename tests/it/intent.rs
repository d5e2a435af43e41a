//! The intent classifier: CLINC150 (when the dataset is present beside the repository) and the live model swap.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loket::intent::data::{CLINC_OOS, read_clinc150};
use loket::intent::measure::measure;
use loket::intent::{Example, LiveModel, TrainConfig};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn clinc150_subset_trains_and_rejects_out_of_scope() {
    let path = root().join("../shared/datasets/clinc150/data_full.json");
    if !path.exists() {
        eprintln!("skipping: CLINC150 not found at {} (see shared/datasets/README.md)", path.display());
        return;
    }
    let clinc = read_clinc150(&path).unwrap();
    // 20 of the 150 intents keep this test quick; `loket eval --format clinc150` runs the full benchmark.
    let labels: BTreeSet<&str> = clinc.train.iter().map(|e| e.label.as_str()).filter(|l| *l != CLINC_OOS).collect();
    let keep: BTreeSet<String> = labels.into_iter().take(20).map(str::to_owned).chain([CLINC_OOS.to_owned()]).collect();
    let subset = |examples: &[Example]| -> Vec<Example> {
        examples.iter().filter(|e| keep.contains(&e.label)).cloned().collect()
    };
    let scratch = tempfile::tempdir().unwrap();
    let config = TrainConfig { seed: 7, ..TrainConfig::default() };
    let measured = measure(
        &subset(&clinc.train),
        Some(&subset(&clinc.validation)),
        &subset(&clinc.test),
        Some(CLINC_OOS),
        &config,
        scratch.path(),
    )
    .unwrap();
    eprintln!("CLINC150 subset of 20 intents:\n{measured}");
    assert!(measured.test.in_scope_accuracy >= 0.85, "in-scope accuracy {}", measured.test.in_scope_accuracy);
    assert!(measured.test.oos_recall.unwrap() >= 0.5, "oos recall {:?}", measured.test.oos_recall);
    assert!(
        measured.test.ece_after <= measured.test.ece_before + 0.02,
        "temperature scaling must not hurt calibration"
    );
}

fn touch(path: &Path) {
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(later).unwrap();
}

#[test]
fn a_broken_model_is_rejected_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.safetensors", "config.json", "labels.json", "tokenizer.json"] {
        std::fs::copy(root().join("models/intent").join(file), dir.path().join(file)).unwrap();
    }
    let live = LiveModel::open(dir.path());
    let before = live.current().expect("the shipped model loads");
    let answer = before.classify("ik wil mijn wachtwoord resetten", 1);

    // A truncated weights file appears (a half-finished copy): rejected, the old model stays.
    let weights = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &weights[..weights.len() / 3]).unwrap();
    touch(&dir.path().join("model.safetensors"));
    live.reload_if_changed();
    let still = live.current().unwrap();
    assert!(Arc::ptr_eq(&before, &still), "the broken model must not replace the working one");

    // The complete file arrives: swapped in; a request holding the old Arc is unaffected.
    std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
    touch(&dir.path().join("model.safetensors"));
    live.reload_if_changed();
    let after = live.current().unwrap();
    assert!(!Arc::ptr_eq(&before, &after), "the new model is swapped in");
    assert_eq!(after.classify("ik wil mijn wachtwoord resetten", 1), answer);
    assert_eq!(before.classify("ik wil mijn wachtwoord resetten", 1), answer);
}
