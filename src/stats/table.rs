//! `loket stats`: the KPIs as a plain-text table for a terminal.

use std::fmt::Write;

use super::{Durations, Kpis, Ratio, Target, TargetStatus};

fn percent(ratio: &Ratio) -> String {
    match ratio.value() {
        Some(value) => format!("{:.1}% ({}/{})", value * 100.0, ratio.count, ratio.total),
        None => "-".into(),
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |s| format!("{s:.0} s"))
}

fn verdict(target: Option<Target>, minimum: bool, unit: &str) -> String {
    let Some(target) = target else { return String::new() };
    let goal = if unit == "%" { format!("{:.0}%", target.goal * 100.0) } else { format!("{} {unit}", target.goal) };
    let bound = if minimum { ">=" } else { "<=" };
    let status = match target.status {
        TargetStatus::Met => "met",
        TargetStatus::Breached => "BREACHED",
        TargetStatus::NoData => "no data",
    };
    format!("target {bound} {goal}: {status}")
}

fn durations(d: &Durations) -> String {
    format!("median {}, p90 {}, max {} (n={})", seconds(d.median), seconds(d.p90), seconds(d.max), d.count)
}

/// The KPIs as aligned lines: name, value, target verdict.
pub fn render(kpis: &Kpis) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |name: &str, value: String, target: String| rows.push((name.to_owned(), value, target));
    row("conversations", kpis.conversations.to_string(), String::new());
    row("with a customer message", kpis.contacts.to_string(), String::new());
    row("deflection", percent(&kpis.deflection), verdict(kpis.deflection.target, true, "%"));
    row("hand-off rate", percent(&kpis.handoff_rate), String::new());
    for (reason, count) in &kpis.handoffs_by_reason {
        row(&format!("  hand-offs: {}", reason.as_str()), count.to_string(), String::new());
    }
    row("wait until claim", durations(&kpis.wait.claimed), verdict(kpis.wait.median_target, false, "s"));
    row("  waited beyond target", kpis.wait.beyond_target.to_string(), String::new());
    row("  not claimed yet", kpis.wait.unclaimed.to_string(), String::new());
    let handle = &kpis.handle_time;
    row(
        "handle time",
        format!("median {}, mean {} (n={})", seconds(handle.median), seconds(handle.mean), handle.count),
        String::new(),
    );
    row("resolution", percent(&kpis.resolution), verdict(kpis.resolution.target, true, "%"));
    let mean = kpis.csat.mean_score.map_or("-".into(), |m| format!("{m:.2} / 5"));
    row("CSAT (ratings 4-5)", percent(&kpis.csat.satisfied), verdict(kpis.csat.satisfied.target, true, "%"));
    row("  mean rating", mean, String::new());
    row("  rating response rate", percent(&kpis.csat.response), String::new());
    row("clarification rate", percent(&kpis.clarification), String::new());
    row("off-topic declined", percent(&kpis.off_topic), String::new());
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let value_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value, target) in &rows {
        let _ = writeln!(out, "{name:<width$}  {value:<value_width$}  {target}");
    }
    let mut out: String = out.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    if !kpis.top_intents.is_empty() {
        let _ = writeln!(out, "\ntop intents");
        for (intent, count) in &kpis.top_intents {
            let _ = writeln!(out, "  {count:>6}  {intent}");
        }
    }
    if !kpis.knowledge_gaps.is_empty() {
        let _ = writeln!(out, "\nunanswered (handed off for low confidence or repeated failure), by best guess");
        for gap in &kpis.knowledge_gaps {
            let intent = if gap.intent.is_empty() { "(nothing matched)" } else { &gap.intent };
            let _ = writeln!(out, "  {:>6}  {intent}", gap.count);
            for example in &gap.examples {
                let _ = writeln!(out, "          \"{example}\"");
            }
        }
    }
    out
}
