// One claimed hand-off on one screen: the two-line summary, the reason and facts, what the bot understood (intents
// with confidences), the FAQ candidates with their answers (insertable into the reply), notes, the customer's
// earlier conversations, and the transcript, live from WatchHandoff (resumed after a drop by sequence number).
// Reply, transfer to another skill with a note, resolve. Every text from the wire goes in as text.
import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import type { Agent, AgentService, Handoff } from "../gen/loket/v1/agent_pb.js";
import { codeOf, describe, follow } from "../calls.js";
import { button, byId, make, sendOnEnter } from "../dom.js";
import type { Texts } from "../texts.js";
import { Transcript, authorLabel } from "../transcript.js";
import * as label from "./labels.js";

/// What the view tells the rest of the console.
export interface Desk {
  /// Says something to the agent (the page's status line).
  notice(text: string): void;
  /// The hand-off left the agent (transferred, resolved, taken away): the list of their conversations changed.
  released(): void;
}

export class HandoffView {
  private handoff: Handoff | null = null;
  private watching: AbortController | null = null;
  private resumeAfter = 0n;
  private readonly transcript: Transcript;
  private readonly section = byId("handoff");
  private readonly replyText = byId<HTMLTextAreaElement>("reply-text");

  constructor(
    private readonly client: Client<typeof AgentService>,
    private readonly texts: Texts,
    private readonly agent: Agent,
    private readonly desk: Desk,
  ) {
    this.transcript = new Transcript(byId("transcript"), (message) => authorLabel(texts, message, "console_customer"));
    const reply = byId<HTMLFormElement>("reply");
    reply.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.reply();
    });
    sendOnEnter(this.replyText, reply);
    byId<HTMLFormElement>("transfer").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.transfer();
    });
    byId<HTMLFormElement>("resolve").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.resolve();
    });
  }

  /// The hand-off on screen, if any.
  get id(): string | undefined {
    return this.handoff?.handoffId;
  }

  /// Shows `handoff` (a package: ClaimHandoff's or GetHandoff's answer) and follows its conversation.
  show(handoff: Handoff): void {
    this.close();
    this.handoff = handoff;
    const t = this.texts.t.bind(this.texts);
    const customer = `${t("console_customer")} ${handoff.customerId}`;
    byId("handoff-title").textContent = `${customer} · ${handoff.skill}`;
    const facts = [
      label.reason(this.texts, handoff.reason),
      handoff.reasonDetail,
      handoff.language,
      label.channel(this.texts, handoff.channel),
      label.tier(this.texts, handoff.tier),
      `${t("console_priority")} ${handoff.priority}`,
    ];
    if (handoff.callback) facts.push(t("console_callback", { time: label.moment(this.texts, handoff.expectedPickupTime) }));
    byId("facts").textContent = facts.filter((fact) => fact !== "").join(" · ");
    byId("first-ask").textContent = handoff.summaryFirstAsk;
    byId("last-message").textContent = handoff.summaryLastMessage;
    this.showEvidence(handoff);
    this.transcript.clear();
    for (const message of handoff.transcript) this.transcript.add(message);
    this.resumeAfter = this.transcript.last();
    const skills = byId<HTMLSelectElement>("transfer-skill");
    skills.replaceChildren(
      ...this.agent.knownSkills.filter((skill) => skill !== handoff.skill).map((skill) => new Option(skill, skill)),
    );
    this.section.hidden = false;
    this.section.parentElement?.classList.add("open");
    this.replyText.focus();
    void this.watch(handoff.handoffId);
  }

  /// Takes the hand-off off the screen and stops following it.
  close(): void {
    this.watching?.abort();
    this.watching = null;
    this.handoff = null;
    this.section.hidden = true;
    this.section.parentElement?.classList.remove("open");
  }

  private showEvidence(handoff: Handoff): void {
    const t = this.texts.t.bind(this.texts);
    const list = (id: string, items: HTMLElement[], empty: string) =>
      byId(id).replaceChildren(...(items.length > 0 ? items : [make("li", "empty", empty)]));
    list(
      "intents",
      // The best guess, and whatever else the model gave at least 1%.
      handoff.intents
        .filter((i, index) => index === 0 || i.confidence >= 0.01)
        .map((i) => make("li", "", `${i.intent} ${Math.round(i.confidence * 100)}%`)),
      t("console_nothing_understood"),
    );
    list(
      "candidates",
      handoff.faqCandidates.map((candidate) => {
        const item = make("li");
        item.append(make("p", "question", `${candidate.question} (${Math.round(candidate.score * 100)}%)`));
        if (candidate.answer !== "") {
          item.append(make("p", "answer", candidate.answer));
          const insert = button(t("console_insert"), () => this.insert(candidate.answer), "secondary");
          insert.dataset.insert = candidate.faqId;
          insert.setAttribute("aria-label", `${t("console_insert")}: ${candidate.question}`);
          item.append(insert);
        }
        return item;
      }),
      t("console_no_candidates"),
    );
    list("notes", handoff.notes.map((note) => make("li", "", note)), "—");
    const earlier = handoff.earlierConversations.map((conversation) => {
      const details = make("details");
      const when = label.moment(this.texts, conversation.createTime);
      details.append(make("summary", "", `${when} · ${label.channel(this.texts, conversation.channel)}`));
      details.append(make("p", "", conversation.firstAsk));
      for (const message of conversation.lastMessages) {
        details.append(make("p", "", `${authorLabel(this.texts, message, "console_customer")}: ${message.text}`));
      }
      return details;
    });
    byId("earlier").replaceChildren(...(earlier.length > 0 ? earlier : [make("p", "", t("console_earlier_none"))]));
  }

  /// A candidate's answer into the reply, after what is typed there already.
  private insert(answer: string): void {
    this.replyText.value = this.replyText.value.trim() === "" ? answer : `${this.replyText.value}\n\n${answer}`;
    this.replyText.focus();
  }

  private async watch(handoffId: string): Promise<void> {
    const watching = new AbortController();
    this.watching = watching;
    const failure = await follow(
      () => this.client.watchHandoff({ handoffId, afterSeq: this.resumeAfter }, { signal: watching.signal }),
      {
        onItem: (event) => {
          this.resumeAfter = event.seq;
          if (event.event.case === "message") this.transcript.add(event.event.value);
        },
        onRetry: () => this.desk.notice(this.texts.t("offline")),
        signal: watching.signal,
      },
    );
    if (watching.signal.aborted || this.id !== handoffId) return;
    if (failure === undefined || failure.code === Code.PermissionDenied) {
      // Transferred, resolved or ended elsewhere: it is no longer the agent's.
      this.desk.notice(`${this.texts.t("console_gone")} ${failure?.rawMessage ?? ""}`.trim());
      this.close();
      this.desk.released();
    } else {
      this.desk.notice(describe(failure, this.texts));
    }
  }

  private async reply(): Promise<void> {
    const handoff = this.handoff;
    const text = this.replyText.value;
    if (handoff === null || text.trim() === "") return;
    try {
      const sent = await this.client.sendAgentMessage({ handoffId: handoff.handoffId, text });
      this.transcript.add(sent);
      if (this.replyText.value === text) this.replyText.value = "";
      this.desk.notice("");
    } catch (error) {
      // The text stays in the box: nothing the agent wrote is lost.
      this.desk.notice(describe(error, this.texts));
    }
  }

  private async transfer(): Promise<void> {
    const handoff = this.handoff;
    const skill = byId<HTMLSelectElement>("transfer-skill").value;
    const note = byId<HTMLTextAreaElement>("transfer-note");
    if (handoff === null || skill === "") return;
    try {
      await this.client.transferHandoff({ handoffId: handoff.handoffId, skill, note: note.value });
      note.value = "";
      this.leave(this.texts.t("console_transferred", { skill }));
    } catch (error) {
      this.desk.notice(describe(error, this.texts));
    }
  }

  private async resolve(): Promise<void> {
    const handoff = this.handoff;
    const note = byId<HTMLTextAreaElement>("resolve-note");
    if (handoff === null) return;
    try {
      await this.client.resolveHandoff({ handoffId: handoff.handoffId, note: note.value });
      note.value = "";
      this.leave(this.texts.t("console_resolved"));
    } catch (error) {
      this.desk.notice(describe(error, this.texts));
      if (codeOf(error) === Code.FailedPrecondition) this.desk.released();
    }
  }

  private leave(notice: string): void {
    this.close();
    this.desk.notice(notice);
    this.desk.released();
  }
}
