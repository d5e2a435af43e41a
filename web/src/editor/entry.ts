// One FAQ entry on one screen: id, category and skill, then every served language side by side (question,
// phrasings as an editable list, answer). Saving creates, updates (based on the revision the editor opened) or
// creates from a knowledge gap. Loket checks everything and stores all or nothing: its `BadRequest` violations are
// shown at their fields. When another editor saved first (ABORTED), their current version is shown under each
// field that differs, with a button to take it, and the form keeps everything this editor typed; the next save is
// based on their revision. Every text goes in as text.
import { type Client, Code } from "@connectrpc/connect";
import type { Faq, KnowledgeGap, KnowledgeService } from "../gen/loket/v1/knowledge_pb.js";
import { codeOf, describe } from "../calls.js";
import { violations } from "../violations.js";
import { button, byId, make } from "../dom.js";
import type { PageConfig, Texts } from "../texts.js";

/// What the entry screen tells the rest of the editor.
export interface Workbench {
  notice(text: string): void;
  /// An entry was stored (created, changed, retired): lists and history are out of date.
  stored(faq: Faq): void;
  /// Another editor changed the entry on screen: its history is out of date.
  changed(faq: Faq): void;
}

/// The content of one entry as the form holds it.
interface Content {
  id: string;
  category: string;
  skill: string;
  translations: Record<string, { question: string; phrasings: string[]; answer: string }>;
}

export class EntryView {
  /// The entry as stored (null while creating one).
  private stored: Faq | null = null;
  /// The revision the next save is based on.
  private revision = 0n;
  /// Creating from this knowledge gap.
  private gap: KnowledgeGap | null = null;
  private readonly form = byId<HTMLFormElement>("entry");
  private readonly languages: string[];

  constructor(
    private readonly client: Client<typeof KnowledgeService>,
    private readonly texts: Texts,
    private readonly page: PageConfig,
    /// Recorded as who made each change.
    private readonly author: string,
    private readonly bench: Workbench,
  ) {
    // The default language first: the one every entry is written in first.
    this.languages = Object.keys(page.languages).sort(
      (a, b) => Number(b === page.default_language) - Number(a === page.default_language) || a.localeCompare(b),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.save();
    });
    byId("retire").addEventListener("click", () => void this.retire());
  }

  /// The id of the entry on screen, if it is stored.
  get id(): string | undefined {
    return this.stored?.id;
  }

  /// A new, empty entry; from `gap`, its language's question is the group's first example, and its questions
  /// become phrasings when it is saved.
  create(gap: KnowledgeGap | null = null, categories: string[] = [], skills: string[] = []): void {
    this.stored = null;
    this.gap = gap;
    this.revision = 0n;
    const content: Content = { id: "", category: "", skill: "", translations: {} };
    for (const language of this.languages) content.translations[language] = { question: "", phrasings: [], answer: "" };
    if (gap !== null && gap.language in content.translations) {
      content.translations[gap.language].question = gap.examples[0] ?? "";
    }
    const t = this.texts.t.bind(this.texts);
    byId("entry-title").textContent = gap === null ? t("editor_new") : t("editor_gap_new");
    byId("entry-state").textContent =
      gap === null ? "" : t("editor_gap_from", { n: gap.count, examples: gap.examples.join(" · ") });
    this.render(content, categories, skills);
    byId("retire").hidden = true;
    byId<HTMLInputElement>("f-id").focus();
  }

  /// `faq` as stored, for editing.
  show(faq: Faq, categories: string[] = [], skills: string[] = []): void {
    this.stored = faq;
    this.gap = null;
    this.revision = faq.revision;
    byId("entry-title").textContent = faq.id;
    this.describeState(faq);
    this.render(contentOf(faq, this.languages), categories, skills);
    byId<HTMLInputElement>("f-id").readOnly = true;
    byId("retire").hidden = faq.retired;
  }

  private describeState(faq: Faq): void {
    const t = this.texts.t.bind(this.texts);
    const state = t("editor_revision_of", { n: String(faq.revision), name: faq.updatedBy });
    byId("entry-state").textContent = faq.retired ? `${t("editor_retired")} · ${state}` : state;
  }

  private render(content: Content, categories: string[], skills: string[]): void {
    const t = this.texts.t.bind(this.texts);
    this.clearErrors();
    const head = byId("entry-head");
    head.replaceChildren(
      this.field("id", t("editor_id"), input("f-id", content.id)),
      this.field("category", t("editor_category"), suggesting("f-category", content.category, categories), "f-category"),
      this.field("skill", t("editor_skill"), suggesting("f-skill", content.skill, skills), "f-skill"),
    );
    const columns = this.languages.map((language) => {
      const column = make("fieldset", "language");
      column.dataset.language = language;
      column.append(make("legend", "", this.page.languages[language]?.name ?? language));
      const own = content.translations[language] ?? { question: "", phrasings: [], answer: "" };
      const question = input(`f-${language}-question`, own.question);
      column.append(this.field(`translations.${language}.question`, t("editor_question"), question));
      const list = make("ol", "phrasings");
      list.id = `f-${language}-phrasings`;
      for (const phrasing of own.phrasings) list.append(this.phrasing(language, list, phrasing));
      const add = button(t("editor_add_phrasing"), () => {
        const item = this.phrasing(language, list, "");
        list.append(item);
        item.querySelector("input")?.focus();
      }, "secondary");
      add.id = `f-${language}-add`;
      add.setAttribute("aria-label", `${t("editor_add_phrasing")} (${language})`);
      const phrasings = make("div");
      phrasings.append(list, add);
      column.append(this.field(`translations.${language}.phrasings`, t("editor_phrasings"), phrasings, "", list));
      const answer = make("textarea");
      answer.id = `f-${language}-answer`;
      answer.rows = 6;
      answer.value = own.answer;
      column.append(this.field(`translations.${language}.answer`, t("editor_answer"), answer));
      return column;
    });
    byId("entry-languages").replaceChildren(...columns);
    this.form.hidden = false;
  }

  /// A labelled field with its error line and a place for the other editor's version; `path` is the field's path
  /// in loket's violations. The label is for the input `labelFor` (the control itself by default), or names the
  /// list `group` for screen readers (a list cannot be labelled by a <label>).
  private field(path: string, label: string, control: HTMLElement, labelFor = control.id, group?: HTMLElement): HTMLElement {
    const wrapper = make("div", "field");
    wrapper.dataset.field = path;
    const caption = make("label", "", label);
    if (group === undefined) {
      caption.htmlFor = labelFor;
    } else {
      caption.id = `${group.id}-label`;
      group.setAttribute("aria-labelledby", caption.id);
    }
    const error = make("p", "field-error");
    error.id = `error-${path.replace(/\./g, "-")}`;
    const theirs = make("div", "theirs");
    theirs.hidden = true;
    wrapper.append(caption, control, error, theirs);
    return wrapper;
  }

  private phrasing(language: string, list: HTMLOListElement, text: string): HTMLLIElement {
    const t = this.texts.t.bind(this.texts);
    const item = make("li");
    const field = input("", text);
    field.className = "phrasing";
    const label = () => {
      const n = [...list.children].indexOf(item) + 1;
      field.setAttribute("aria-label", `${t("editor_phrasing", { n })} (${language})`);
    };
    const remove = button("×", () => {
      const next = (item.nextElementSibling ?? item.previousElementSibling)?.querySelector("input");
      item.remove();
      for (const other of list.querySelectorAll("input")) other.dispatchEvent(new Event("relabel"));
      (next ?? byId(`f-${language}-add`)).focus();
    }, "remove");
    remove.setAttribute("aria-label", `${t("editor_remove")}: ${text}`);
    field.addEventListener("relabel", label);
    field.addEventListener("input", () => remove.setAttribute("aria-label", `${t("editor_remove")}: ${field.value}`));
    item.append(field, remove);
    queueMicrotask(label);
    return item;
  }

  /// What the form holds now.
  private content(): Content {
    const value = (id: string) => byId<HTMLInputElement | HTMLTextAreaElement>(id).value.trim();
    const content: Content = {
      id: value("f-id"),
      category: value("f-category"),
      skill: value("f-skill"),
      translations: {},
    };
    for (const language of this.languages) {
      const phrasings = [...byId(`f-${language}-phrasings`).querySelectorAll<HTMLInputElement>("input")]
        .map((field) => field.value.trim())
        .filter((text) => text !== "");
      content.translations[language] = {
        question: value(`f-${language}-question`),
        phrasings,
        answer: value(`f-${language}-answer`),
      };
    }
    return content;
  }

  private async save(): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    const faq = { ...this.content(), revision: this.revision };
    byId<HTMLButtonElement>("save").disabled = true;
    try {
      let saved: Faq;
      if (this.stored !== null) {
        const updateMask = { paths: ["category", "skill", "translations"] };
        saved = await this.client.updateFaq({ faq, updateMask, author: this.author });
      } else if (this.gap !== null) {
        saved = await this.client.createFaqFromGap({ gapId: this.gap.id, faq, author: this.author });
      } else {
        saved = await this.client.createFaq({ faq, author: this.author });
      }
      this.show(saved);
      this.bench.notice(t("editor_saved", { id: saved.id, n: String(saved.revision) }));
      this.bench.stored(saved);
    } catch (error) {
      await this.refused(error);
    } finally {
      byId<HTMLButtonElement>("save").disabled = false;
    }
  }

  private async retire(): Promise<void> {
    if (this.stored === null) return;
    const t = this.texts.t.bind(this.texts);
    try {
      const retired = await this.client.deleteFaq({ id: this.stored.id, revision: this.revision, author: this.author });
      this.show(retired);
      this.bench.notice(t("editor_retired_done", { id: retired.id }));
      this.bench.stored(retired);
    } catch (error) {
      await this.refused(error);
    }
  }

  /// A save or retirement loket refused: field errors at their fields, a conflict beside the form.
  private async refused(error: unknown): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    this.clearErrors();
    const code = codeOf(error);
    if (code === Code.InvalidArgument) {
      const found = violations(error, "faq.");
      if (found.length > 0) {
        this.showErrors(found);
        this.bench.notice(t("editor_invalid"));
        return;
      }
    }
    if (code === Code.Aborted && this.stored !== null) {
      await this.conflict();
      return;
    }
    this.bench.notice(describe(error, this.texts));
  }

  private clearErrors(): void {
    for (const error of this.form.querySelectorAll(".field-error")) error.replaceChildren();
    for (const field of this.form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    for (const theirs of this.form.querySelectorAll<HTMLElement>(".theirs")) theirs.hidden = true;
  }

  private showErrors(found: { field: string; description: string }[]): void {
    const general = byId("entry-errors");
    for (const { field, description } of found) {
      // "translations.nl.phrasings[2]" belongs to the phrasings list, and marks its third input.
      const indexed = /^(.*)\[(\d+)\]$/.exec(field);
      const path = indexed === null ? field : indexed[1];
      const wrapper = this.form.querySelector<HTMLElement>(`.field[data-field="${CSS.escape(path)}"]`);
      if (wrapper === null) {
        general.append(make("li", "", `${field}: ${description}`));
        continue;
      }
      const error = wrapper.querySelector(".field-error");
      error?.append(make("span", "", description));
      let control = wrapper.querySelector<HTMLElement>("input, textarea, ol");
      if (indexed !== null) {
        control = wrapper.querySelectorAll<HTMLInputElement>("ol input")[Number(indexed[2])] ?? control;
      }
      control?.setAttribute("aria-invalid", "true");
      if (error !== null) control?.setAttribute("aria-describedby", error.id);
    }
    this.form.querySelector<HTMLElement>("[aria-invalid=true]")?.focus();
  }

  /// Another editor saved first: their version under each field that differs, the form as this editor left it,
  /// and the next save based on their revision.
  private async conflict(): Promise<void> {
    const t = this.texts.t.bind(this.texts);
    if (this.stored === null) return;
    let theirs: Faq;
    try {
      theirs = await this.client.getFaq({ id: this.stored.id });
    } catch (error) {
      this.bench.notice(describe(error, this.texts));
      return;
    }
    this.stored = theirs;
    this.revision = theirs.revision;
    this.describeState(theirs);
    this.bench.changed(theirs);
    const name = theirs.updatedBy;
    this.bench.notice(t("editor_conflict", { name, n: String(theirs.revision) }));
    const mine = this.content();
    const other = contentOf(theirs, this.languages);
    const heading = t("editor_theirs", { name, n: String(theirs.revision) });
    const offer = (path: string, shown: string, take: () => void, label = t("editor_use_theirs")) => {
      const slot = this.form.querySelector<HTMLElement>(`.field[data-field="${CSS.escape(path)}"] .theirs`);
      if (slot === null) return;
      const text = make("p", "their-text", shown);
      slot.replaceChildren(make("strong", "", heading), text, button(label, take, "secondary"));
      slot.hidden = false;
    };
    const set = (id: string, value: string) => () => {
      byId<HTMLInputElement>(id).value = value;
    };
    for (const field of ["category", "skill"] as const) {
      if (mine[field] !== other[field]) offer(field, other[field], set(`f-${field}`, other[field]));
    }
    for (const language of this.languages) {
      const a = mine.translations[language];
      const b = other.translations[language];
      const path = `translations.${language}`;
      if (a.question !== b.question) offer(`${path}.question`, b.question, set(`f-${language}-question`, b.question));
      if (a.answer !== b.answer) offer(`${path}.answer`, b.answer, set(`f-${language}-answer`, b.answer));
      const missing = b.phrasings.filter((p) => !a.phrasings.includes(p));
      if (missing.length > 0 || a.phrasings.length !== b.phrasings.length) {
        const list = byId<HTMLOListElement>(`f-${language}-phrasings`);
        const take = () => {
          const have = [...list.querySelectorAll("input")].map((field) => field.value.trim());
          for (const phrasing of b.phrasings.filter((p) => !have.includes(p))) {
            list.append(this.phrasing(language, list, phrasing));
          }
        };
        offer(`${path}.phrasings`, b.phrasings.join("\n"), take, t("editor_add_theirs"));
      }
    }
    this.form.querySelector<HTMLElement>(".theirs:not([hidden]) button")?.focus();
  }
}

function contentOf(faq: Faq, languages: string[]): Content {
  const content: Content = { id: faq.id, category: faq.category, skill: faq.skill, translations: {} };
  for (const language of languages) {
    const own = faq.translations[language];
    content.translations[language] = {
      question: own?.question ?? "",
      phrasings: [...(own?.phrasings ?? [])],
      answer: own?.answer ?? "",
    };
  }
  return content;
}

/// A text input with `id` and `value`.
function input(id: string, value: string): HTMLInputElement {
  const field = make("input");
  field.type = "text";
  if (id !== "") field.id = id;
  field.value = value;
  return field;
}

/// A text input (`id`) suggesting `options`: the input and its datalist.
function suggesting(id: string, value: string, options: string[]): HTMLElement {
  const field = input(id, value);
  const suggestions = make("datalist");
  suggestions.id = `${id}-options`;
  for (const option of options) suggestions.append(new Option(option));
  field.setAttribute("list", suggestions.id);
  const both = make("span", "with-list");
  both.append(field, suggestions);
  return both;
}
