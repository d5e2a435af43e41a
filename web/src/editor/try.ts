// The "try it" box beside every screen: what loket would do with a customer's question right now (TestQuery),
// without a conversation: the decision and why, what the bot would say, the intent ranking with calibrated
// confidences and the FAQ matches with their scores. A FAQ id opens its entry.
import type { Client } from "@connectrpc/connect";
import { DecisionKind, HandoffReason } from "../gen/loket/v1/chat_pb.js";
import type { KnowledgeService, TestQueryResponse } from "../gen/loket/v1/knowledge_pb.js";
import { describe } from "../calls.js";
import { button, byId, make, sendOnEnter } from "../dom.js";
import type { Key, PageConfig, Texts } from "../texts.js";
import { reason } from "../console/labels.js";

export function decisionKind(texts: Texts, kind: DecisionKind): string {
  const name = DecisionKind[kind] ?? "UNSPECIFIED";
  return kind === DecisionKind.UNSPECIFIED ? "" : texts.t(`decision_${name.toLowerCase()}` as Key);
}

function percent(value: number): string {
  return `${Math.round(value * 100)}%`;
}

export class TryBox {
  private readonly result = byId("try-result");
  private readonly text = byId<HTMLTextAreaElement>("try-text");
  private readonly language = byId<HTMLSelectElement>("try-language");

  constructor(
    private readonly client: Client<typeof KnowledgeService>,
    private readonly texts: Texts,
    page: PageConfig,
    private readonly open: (faqId: string) => void,
  ) {
    for (const [code, language] of Object.entries(page.languages)) this.language.append(new Option(language.name, code));
    const form = byId<HTMLFormElement>("try");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run();
    });
    sendOnEnter(this.text, form);
  }

  private async run(): Promise<void> {
    const text = this.text.value.trim();
    if (text === "") return;
    let outcome: TestQueryResponse;
    try {
      outcome = await this.client.testQuery({ text, language: this.language.value });
    } catch (error) {
      this.result.replaceChildren(make("p", "error", describe(error, this.texts)));
      return;
    }
    this.render(outcome);
  }

  private render(outcome: TestQueryResponse): void {
    const t = this.texts.t.bind(this.texts);
    const decision = outcome.decision;
    const parts: HTMLElement[] = [];
    if (decision !== undefined) {
      let kind = decisionKind(this.texts, decision.kind);
      if (decision.answerFaqId !== "") kind += `: ${decision.answerFaqId}`;
      if (decision.handoffReason !== HandoffReason.UNSPECIFIED) kind += ` (${reason(this.texts, decision.handoffReason)})`;
      const summary = make("p", "decision");
      summary.dataset.kind = DecisionKind[decision.kind] ?? "";
      summary.append(make("strong", "", `${t("editor_decision")}: `), kind, ` · ${decision.language}`);
      parts.push(summary, make("p", "why", `${t("editor_why")}: ${decision.explanation}`));
    }
    if (outcome.replies.length > 0) {
      parts.push(make("h3", "", t("editor_replies")));
      const replies = make("ul", "replies");
      for (const reply of outcome.replies) replies.append(make("li", "", reply));
      parts.push(replies);
    }
    if (decision !== undefined && decision.intents.length > 0) {
      parts.push(make("h3", "", t("editor_intents")));
      const intents = make("ol", "intents");
      for (const intent of decision.intents) intents.append(make("li", "", `${intent.intent} ${percent(intent.confidence)}`));
      parts.push(intents);
    }
    if (decision !== undefined) {
      parts.push(make("h3", "", t("editor_matches")));
      const matches = make("ol", "matches");
      for (const match of decision.faqMatches) {
        const item = make("li");
        const open = button(match.faqId, () => this.open(match.faqId), "link");
        open.dataset.faq = match.faqId;
        item.append(open, ` ${match.score.toFixed(2)} · `, make("span", "", match.question));
        matches.append(item);
      }
      if (decision.faqMatches.length === 0) matches.append(make("li", "", t("editor_no_matches")));
      parts.push(matches);
    }
    this.result.replaceChildren(...parts);
  }
}
