//! Clarifying questions: when the evidence points at a few entries but none clearly, which entries to offer.

use super::*;

impl Policy {
    /// A numbered list of FAQ questions to choose from.
    pub(super) fn clarify(
        &self,
        mut turn: Draft,
        input: &TurnInput<'_>,
        locale: &Locale,
        opening: &str,
        options: &[&Faq],
        failed_turns: u32,
    ) -> Outcome {
        turn.kind = DecisionKind::Clarify;
        let mut text = opening.to_owned();
        for (n, faq) in options.iter().enumerate() {
            let question = faq.translations.get(input.language).map_or("", |t| t.question.as_str());
            let line = locale.replies.clarify_option.replace("{n}", &(n + 1).to_string());
            text.push('\n');
            text.push_str(&line.replace("{question}", question));
        }
        text.push('\n');
        text.push_str(&locale.replies.clarify_hint);
        turn.say(&text, None);
        turn.clarify_options = options.iter().map(|f| f.id.clone()).collect();
        let memory =
            DialogueMemory { pending_options: turn.clarify_options.clone(), failed_turns, ..Default::default() };
        self.finish(turn, input, memory)
    }

    /// Entries worth offering: the model's and retrieval's plausible candidates, best first, at most the maximum.
    pub(super) fn clarify_candidates(
        &self,
        knowledge: &Knowledge,
        evidence: &Evidence,
        limits: &Thresholds,
    ) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = Vec::new();
        if !evidence.out_of_scope {
            for (label, p) in &evidence.intents {
                if *p >= self.config.intent_clarify_min
                    && let Some(faq) = knowledge.base.position(label)
                {
                    scored.push((faq, *p));
                }
            }
        }
        let top = evidence.hits.first().map_or(0.0, |h| h.1);
        for &(faq, score) in &evidence.hits {
            let close = top - score <= 2.0 * limits.answer_min_margin;
            // When the model rules the message out of scope, only a candidate retrieval is sure of is offered:
            // the signals disagree, so ask rather than hand off or answer.
            let allowed = !evidence.out_of_scope || score >= limits.answer_min_score;
            if score >= limits.clarify_min_score && close && allowed && !scored.iter().any(|(f, _)| *f == faq) {
                scored.push((faq, score));
            }
        }
        // The two signals' own best candidates come first, so neither is crowded out by the other's runners-up
        // (their scores are on different scales); the rest follow by score.
        let search_best = evidence
            .hits
            .first()
            .filter(|&&(_, s)| {
                s >= limits.clarify_min_score && (!evidence.out_of_scope || s >= limits.answer_min_score)
            })
            .map(|h| h.0);
        // The model's best entry: offered when the model is plausibly right about it, or when search finds it
        // relevant too (a model that rules the message out of scope still ranks the shop's entries). A model that
        // rules the message out of scope is only asked for its guess when search found a topic.
        let model_best = evidence
            .intents
            .iter()
            .filter_map(|(label, p)| knowledge.base.position(label).map(|faq| (faq, *p)))
            .next()
            .filter(|&(faq, p)| {
                (p >= self.config.intent_clarify_min && !evidence.out_of_scope)
                    || evidence.retrieval(faq) >= limits.clarify_min_score
            })
            .map(|(faq, _)| faq)
            .filter(|_| !evidence.out_of_scope || search_best.is_some());
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut options: Vec<usize> = Vec::new();
        for faq in search_best.into_iter().chain(model_best).chain(scored.into_iter().map(|(f, _)| f)) {
            if !options.contains(&faq) {
                options.push(faq);
            }
        }
        options.truncate(self.config.clarify_max_options);
        options
    }
}
