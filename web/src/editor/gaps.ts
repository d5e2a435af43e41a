// The knowledge gaps: questions the bot handed off for want of a match or met with a clarifying question, grouped
// by loket, biggest group first, with their count and (redacted) examples. Each group can be added as phrasings to
// an entry (AttachKnowledgeGap, on the entry's current revision) or become a new entry (the entry screen, saved
// with CreateFaqFromGap). Either closes the group.
import type { Client } from "@connectrpc/connect";
import type { Faq, KnowledgeGap, KnowledgeService } from "../gen/loket/v1/knowledge_pb.js";
import { describe } from "../calls.js";
import { button, byId, make } from "../dom.js";
import type { Texts } from "../texts.js";
import { moment } from "../console/labels.js";

/// What the gap list needs from the rest of the editor.
export interface GapActions {
  notice(text: string): void;
  /// The live entries a group can be added to.
  entries(): Faq[];
  /// Opens the entry screen for a new entry from `gap`.
  createFrom(gap: KnowledgeGap): void;
  /// A group was added to `faq`.
  attached(faq: Faq): void;
}

export class GapList {
  private readonly list = byId<HTMLOListElement>("gaps");
  /// Open groups, after the last load.
  count = 0;

  constructor(
    private readonly client: Client<typeof KnowledgeService>,
    private readonly texts: Texts,
    private readonly author: string,
    private readonly actions: GapActions,
  ) {}

  async load(): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    const gaps: KnowledgeGap[] = [];
    let total = 0;
    try {
      let pageToken = "";
      do {
        const page = await this.client.listKnowledgeGaps({ pageSize: 500, pageToken });
        gaps.push(...page.gaps);
        total = page.totalQuestions;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    } catch (error) {
      this.actions.notice(describe(error, this.texts));
      return;
    }
    gaps.sort((a, b) => b.count - a.count);
    this.count = gaps.length;
    byId("gap-count").textContent = gaps.length > 0 ? `(${gaps.length})` : "";
    byId("gaps-total").textContent = t("editor_gaps_total", { n: total });
    byId("gaps-none").hidden = gaps.length > 0;
    this.list.replaceChildren(...gaps.map((gap) => this.item(gap)));
  }

  private item(gap: KnowledgeGap): HTMLLIElement {
    const t = this.texts.t.bind(this.texts);
    const item = make("li", "gap");
    item.dataset.gap = gap.id;
    const when = `${moment(this.texts, gap.firstTime)} – ${moment(this.texts, gap.lastTime)}`;
    item.append(make("h3", "", t("editor_gap_count", { n: gap.count, language: gap.language })), make("p", "when", when));
    const examples = make("ul", "examples");
    for (const example of gap.examples) examples.append(make("li", "", example));
    item.append(examples);

    const entries = this.actions.entries();
    const choose = make("select");
    choose.id = `attach-${gap.id}`;
    // No entry is chosen for the editor unless loket found one close.
    choose.append(new Option("—", ""));
    for (const entry of entries) {
      const question = entry.translations[gap.language]?.question ?? "";
      choose.append(new Option(question === "" ? entry.id : `${entry.id} · ${question}`, entry.id));
    }
    if (gap.closestFaqId !== "") choose.value = gap.closestFaqId;
    const label = make("label", "", t("editor_gap_attach"));
    label.htmlFor = choose.id;
    const attach = button(t("editor_gap_attach_go"), () => void this.attach(gap, choose.value));
    attach.dataset.attach = gap.id;
    attach.setAttribute("aria-label", `${t("editor_gap_attach")}: ${gap.examples[0] ?? ""}`);
    const create = button(t("editor_gap_new"), () => this.actions.createFrom(gap), "secondary");
    create.dataset.create = gap.id;
    create.setAttribute("aria-label", `${t("editor_gap_new")}: ${gap.examples[0] ?? ""}`);
    const controls = make("div", "gap-actions");
    controls.append(label, choose, attach, create);
    item.append(controls);
    return item;
  }

  private async attach(gap: KnowledgeGap, faqId: string): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    if (faqId === "") return;
    try {
      // On the entry's revision as it is now: the questions are added to whatever it holds.
      const current = await this.client.getFaq({ id: faqId });
      const faq = await this.client.attachKnowledgeGap({
        gapId: gap.id,
        faqId,
        revision: current.revision,
        author: this.author,
      });
      this.actions.notice(t("editor_gap_attached", { id: faq.id, n: gap.count }));
      this.actions.attached(faq);
    } catch (error) {
      this.actions.notice(describe(error, this.texts));
    }
    await this.load();
  }
}
