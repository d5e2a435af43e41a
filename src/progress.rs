//! Showing how far a long job is (`loket train`, `loket eval`, a background retrain): a bar with rate and time left
//! on a terminal, a plain line now and then elsewhere (a CI log, a pipe), a log line in the server. The job reports
//! fractions through [`crate::intent::Progress`]; this turns them into text.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::intent::Progress;

/// Where the progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A bar redrawn in place on stderr (at most ten times a second).
    Bar,
    /// A line on stderr every five seconds: for logs and pipes, which a redrawn bar would fill with noise.
    Lines,
    /// An `info` log line every ten seconds (the server).
    Log,
}

impl Style {
    /// A bar when stderr is a terminal, lines otherwise.
    pub fn for_stderr() -> Style {
        if std::io::stderr().is_terminal() { Style::Bar } else { Style::Lines }
    }

    fn every(self) -> Duration {
        match self {
            Style::Bar => Duration::from_millis(100),
            Style::Lines => Duration::from_secs(5),
            Style::Log => Duration::from_secs(10),
        }
    }
}

struct State {
    started: Instant,
    last_shown: Option<Instant>,
}

/// A [`Progress`] that shows `what` in `style`.
pub fn meter(what: &str, style: Style) -> Progress {
    let what = what.to_owned();
    let state = Mutex::new(State { started: Instant::now(), last_shown: None });
    Progress::new(move |fraction| {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let done = fraction >= 1.0;
        if !done && state.last_shown.is_some_and(|last| now - last < style.every()) {
            return;
        }
        state.last_shown = Some(now);
        let line = describe(&what, fraction, now - state.started);
        match style {
            Style::Bar => {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{line}\x1b[K{}", if done { "\n" } else { "" });
                let _ = err.flush();
            }
            Style::Lines => eprintln!("{line}"),
            Style::Log => tracing::info!(progress = %line, "{what}"),
        }
    })
}

/// "training [#########...........] 45% 12 s, about 15 s left (3.7%/s)"
fn describe(what: &str, fraction: f64, elapsed: Duration) -> String {
    const WIDTH: usize = 20;
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = (fraction * WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(WIDTH - filled));
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { 100.0 * fraction / seconds } else { 0.0 };
    let left = match fraction {
        f if f >= 1.0 => "done".to_owned(),
        // Too early to say: the first steps include setting up.
        f if f < 0.02 || seconds < 1.0 => "estimating".to_owned(),
        f => format!("about {:.0} s left", seconds * (1.0 - f) / f),
    };
    format!("{what} [{bar}] {:>3.0}% {seconds:.0} s, {left} ({rate:.1}%/s)", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_how_fast_and_how_long_still() {
        let line = describe("training", 0.25, Duration::from_secs(10));
        assert_eq!(line, "training [#####...............]  25% 10 s, about 30 s left (2.5%/s)");
        assert!(describe("training", 0.01, Duration::from_secs(1)).contains("estimating"));
        assert!(describe("training", 1.0, Duration::from_secs(40)).contains("[####################] 100% 40 s, done"));
    }

    #[test]
    fn stages_map_onto_one_run() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&seen);
        let progress = Progress::new(move |f| sink.lock().unwrap().push(f));
        progress.stage(0.0, 0.5).report(0.5);
        progress.stage(0.5, 0.5).report(1.0);
        progress.stage(0.5, 0.5).report(7.0);
        assert_eq!(*seen.lock().unwrap(), [0.25, 1.0, 1.0]);
    }
}
