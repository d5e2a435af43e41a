//! `loket ask`: one message through the decision policy, locally, with the evidence behind the decision.

use clap::Args;

use super::{Common, TierArg};
use crate::conversation::{Channel, DialogueMemory};
use crate::dialogue::{Policy, TurnInput, language_of};
use crate::intent::LiveModel;
use crate::knowledge::Knowledge;

#[derive(Args)]
pub(super) struct AskArgs {
    #[command(flatten)]
    common: Common,
    /// The customer's message.
    text: String,
    /// Language the conversation is in (default: detected); as in the service, a message clearly written in another
    /// served language is handled in that one.
    #[arg(long)]
    lang: Option<String>,
    #[arg(long, value_enum, default_value = "standard")]
    tier: TierArg,
}

pub(super) fn run(args: AskArgs) -> anyhow::Result<()> {
    let config = args.common.config()?;
    let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
    // As a conversation's first message: in the given language (unless clearly written in another), else detected.
    let start = args.lang.as_deref().unwrap_or(&config.languages.default);
    let language = language_of(&knowledge, &args.text, start, args.lang.is_some());
    anyhow::ensure!(config.languages.supported.contains(&language), "language {language} is not configured");
    let policy = Policy::new(config.policy.clone(), config.channels.clone());
    let memory = DialogueMemory::default();
    let input = TurnInput {
        text: &args.text,
        language: &language,
        tier: args.tier.tier(),
        channel: Channel::Chat,
        memory: &memory,
    };
    let model = LiveModel::open(&config.intent.model_dir).current();
    let outcome = policy.decide(&knowledge, model.as_deref(), &input);
    let d = &outcome.decision;
    println!("decision:    {}", d.kind.as_str());
    println!("language:    {}", d.language);
    println!("why:         {}", d.explanation);
    for m in &d.faq_matches {
        println!("  search {:.3}  {:<28} {}", m.score, m.faq_id, m.question);
    }
    for i in &d.intents {
        println!("  intent {:.3}  {}", i.confidence, i.intent);
    }
    for reply in &outcome.replies {
        println!("reply:\n{}", reply.text);
    }
    Ok(())
}
