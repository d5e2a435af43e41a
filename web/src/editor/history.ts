// An entry's revision history, newest first, each change as a readable diff against the revision before it: the
// fields that changed with their old and new text, phrasings added and removed, retirement. ListRevisions returns
// each revision's whole entry, so the diff is made here; the page asks for one revision more than it shows, the
// base of the oldest diff.
import type { Client } from "@connectrpc/connect";
import type { Faq, KnowledgeService, Revision } from "../gen/loket/v1/knowledge_pb.js";
import { describe } from "../calls.js";
import { byId, make } from "../dom.js";
import type { Key, Texts } from "../texts.js";
import { moment } from "../console/labels.js";

/// Revisions shown per entry.
const SHOWN = 50;

/// One line of a diff: what changed, and its text before and after (either may be absent).
export interface Change {
  what: string;
  before?: string;
  after?: string;
}

/// What changed from `before` (absent for a creation) to `after`, field by field, in `texts`' words.
export function diff(texts: Texts, before: Faq | undefined, after: Faq): Change[] {
  const t = texts.t.bind(texts);
  const changes: Change[] = [];
  const field = (what: string, old: string | undefined, now: string) => {
    if (old !== now) changes.push({ what, before: old || undefined, after: now || undefined });
  };
  field(t("editor_category"), before?.category, after.category);
  field(t("editor_skill"), before?.skill, after.skill);
  const languages = new Set([...Object.keys(before?.translations ?? {}), ...Object.keys(after.translations)]);
  for (const language of [...languages].sort()) {
    const old = before?.translations[language];
    const now = after.translations[language];
    field(`${t("editor_question")} (${language})`, old?.question, now?.question ?? "");
    const had = old?.phrasings ?? [];
    const has = now?.phrasings ?? [];
    for (const phrasing of had.filter((p) => !has.includes(p))) {
      changes.push({ what: `${t("editor_phrasings")} (${language})`, before: phrasing });
    }
    for (const phrasing of has.filter((p) => !had.includes(p))) {
      changes.push({ what: `${t("editor_phrasings")} (${language})`, after: phrasing });
    }
    field(`${t("editor_answer")} (${language})`, old?.answer, now?.answer ?? "");
  }
  if ((before?.retired ?? false) !== after.retired) {
    changes.push({ what: t("editor_retired"), after: after.retired ? t("editor_yes") : t("editor_no") });
  }
  return changes;
}

export class History {
  private readonly section = byId("history");
  private readonly list = byId<HTMLOListElement>("revisions");

  constructor(
    private readonly client: Client<typeof KnowledgeService>,
    private readonly texts: Texts,
  ) {}

  hide(): void {
    this.section.hidden = true;
  }

  async show(faqId: string): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    let revisions: Revision[];
    try {
      revisions = (await this.client.listRevisions({ faqId, pageSize: SHOWN + 1 })).revisions;
    } catch (error) {
      this.list.replaceChildren(make("li", "", describe(error, this.texts)));
      this.section.hidden = false;
      return;
    }
    const items = revisions.slice(0, SHOWN).map((revision, i) => {
      const after = revision.faq;
      const item = make("li");
      if (after === undefined) return item;
      const action = t(`editor_action_${revision.action}` as Key);
      const heading = t("editor_revision", {
        n: String(after.revision),
        action,
        name: after.updatedBy,
        time: moment(this.texts, after.updateTime),
      });
      item.append(make("p", "revision", heading));
      // The base of the oldest one shown is the one more the page asked for; a creation has none.
      const before = revision.action === "create" ? undefined : revisions[i + 1]?.faq;
      const changes = diff(this.texts, before, after);
      const lines = make("ul", "diff");
      for (const change of changes) {
        const line = make("li");
        line.append(make("span", "what", `${change.what}: `));
        if (change.before !== undefined) line.append(make("del", "", change.before));
        if (change.before !== undefined && change.after !== undefined) line.append(" → ");
        if (change.after !== undefined) line.append(make("ins", "", change.after));
        lines.append(line);
      }
      if (changes.length === 0) lines.append(make("li", "", t("editor_no_change")));
      item.append(lines);
      return item;
    });
    this.list.replaceChildren(...items);
    this.section.hidden = false;
  }
}
