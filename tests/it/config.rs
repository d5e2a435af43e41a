//! Configuration: the documented example file, the layers (file < environment < command line), and
//! `loket config check` naming the key of an unknown key or an invalid value in every layer.

use std::path::{Path, PathBuf};
use std::process::Command;

use loket::config::{Config, ConfigError};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("loket.example.toml")
}

/// Every leaf key of a TOML table as a dotted path.
fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) if !table.is_empty() => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                keys(value, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn the_example_file_is_the_defaults_with_every_key_present_and_commented() {
    let text = std::fs::read_to_string(example()).unwrap();
    let written: toml::Value = toml::from_str(&text).unwrap();
    let loaded = Config::load(Some(&example())).expect("the example is valid");
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    assert_eq!(toml::Value::try_from(loaded).unwrap(), defaults, "the example holds the built-in defaults");
    let (mut present, mut expected) = (Vec::new(), Vec::new());
    keys(&written, "", &mut present);
    keys(&defaults, "", &mut expected);
    for key in &expected {
        // Empty maps (per-language overrides, per-skill hours) are shown as commented examples instead.
        let empty_map = matches!(key.as_str(), "policy.languages" | "handoff.skill_hours");
        assert!(empty_map || present.contains(key), "{key} is missing from loket.example.toml");
    }
    // Every key line has a comment right above it (or on a line of comments above that).
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (n, line) in lines.iter().enumerate() {
        let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
        if is_key {
            assert!(n > 0 && lines[n - 1].starts_with('#'), "line {}: {line:?} has no comment", n + 1);
        }
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn layers_override_in_order_file_environment_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loket.toml");
    std::fs::write(&file, "[kpi]\ncsat_min = 0.8\nresolution_min = 0.8\ndeflection_min = 0.8\n").unwrap();
    let vars = env(&[
        ("LOKET_KPI__RESOLUTION_MIN", "0.7"),
        ("LOKET_KPI__DEFLECTION_MIN", "0.7"),
        ("LOKET_CONFIG", "ignored: names the file"),
        ("PATH", "/usr/bin"),
        ("LOKET_LANGUAGES__SUPPORTED", "nl,en"),
        ("LOKET_POLICY__LANGUAGES__EN__ANSWER_MIN_SCORE", "0.55"),
        ("LOKET_SERVER__LISTEN", "127.0.0.1:6000"),
    ]);
    let settings = vec![("kpi.deflection_min".to_string(), "0.6".to_string())];
    let (config, sources) = Config::load_layered(Some(&file), vars, &settings).unwrap();
    assert_eq!((config.kpi.csat_min, config.kpi.resolution_min, config.kpi.deflection_min), (0.8, 0.7, 0.6));
    assert_eq!(config.kpi.median_wait_secs, 120, "untouched keys keep their defaults");
    assert_eq!(config.languages.supported, vec!["nl", "en"]);
    assert_eq!(config.policy.languages["en"].answer_min_score, Some(0.55));
    assert_eq!(config.server.listen.port(), 6000);
    assert_eq!(sources.file.as_deref(), Some(file.as_path()));
    assert_eq!(sources.command_line, vec!["kpi.deflection_min"]);
    assert_eq!(sources.env.len(), 5);
}

/// Key-value pairs, as environment variables or command-line settings.
type Pairs<'a> = &'a [(&'a str, &'a str)];

#[test]
fn a_bad_environment_variable_or_setting_is_named() {
    let cases: [(Pairs, Pairs, &str); 5] = [
        (&[("LOKET_KPI__CSAT_MINIMUM", "0.9")], &[], "kpi.csat_minimum (from LOKET_KPI__CSAT_MINIMUM)"),
        (&[("LOKET_KPI__CSAT_MIN", "high")], &[], "kpi.csat_min (from LOKET_KPI__CSAT_MIN)"),
        (&[("LOKET_VERBOSE", "1")], &[], "verbose (from LOKET_VERBOSE)"),
        (&[], &[("metrics.listen", "not an address")], "metrics.listen (from the command line)"),
        (&[("LOKET_KPI__CSAT_MIN", "1.5")], &[], "kpi.csat_min"),
    ];
    for (vars, settings, key) in cases {
        let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match Config::load_layered(None, env(vars), &settings) {
            Err(ConfigError::Invalid { key: named, .. }) => assert_eq!(named, key),
            other => panic!("{vars:?} {settings:?}: expected an error naming {key}, got {other:?}"),
        }
    }
}

/// Runs `loket config check` with `args` and no `LOKET_*` variables but `env`.
fn config_check(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loket"));
    command.args(["config", "check"]).args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LOKET_")) {
        command.env_remove(name);
    }
    let output = command.envs(env.iter().copied()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn config_check_accepts_the_example_and_names_the_bad_key() {
    let example = example();
    let (ok, text) = config_check(&["--config", example.to_str().unwrap()], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("configuration ok") && text.contains("127.0.0.1:9464"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    for (contents, key) in [
        ("[policy]\nanswer_min_scor = 0.5\n", "answer_min_scor"),
        ("[kpi]\ncsat_min = 1.5\n", "kpi.csat_min"),
        ("[kpi]\nmedian_wait_secs = \"two minutes\"\n", "median_wait_secs"),
        ("[metricz]\nenabled = false\n", "metricz"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, contents).unwrap();
        let (ok, text) = config_check(&["--config", file.to_str().unwrap()], &[]);
        assert!(!ok, "{contents:?} was accepted: {text}");
        assert!(text.contains(key), "{contents:?}: the error does not name {key}: {text}");
    }
    let (ok, text) = config_check(&[], &[("LOKET_POLICY__ANSWER_MIN_SCOR", "0.5")]);
    assert!(!ok && text.contains("policy.answer_min_scor") && text.contains("LOKET_POLICY__ANSWER_MIN_SCOR"), "{text}");
    let (ok, text) = config_check(&["--set", "kpi.median_wait_secs=-1"], &[]);
    assert!(!ok && text.contains("kpi.median_wait_secs"), "{text}");
}
