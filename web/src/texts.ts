// What a page says, in the visitor's language. loket writes its served languages' texts (the locale files' `ui`
// section, knowledge-base/locales/*.yaml) into the page's `loket-page` data block as it serves it; the pages carry
// no texts of their own, so a language is added by a locale file and `languages.supported` alone.

/// Every text key the pages use. A test (tests/it/web.rs) checks that each locale file has exactly these.
export const KEYS = [
  "author_bot", "author_agent", "author_system", "offline",
  "error_unauthenticated", "error_permission_denied", "error_resource_exhausted", "error_unavailable",
  "error_invalid_argument", "error_failed_precondition", "error_not_found", "error_other",
  "widget_title", "widget_launcher", "widget_close", "widget_log", "widget_input", "widget_send", "widget_you",
  "widget_yes", "widget_no", "widget_rate", "widget_star", "widget_thanks", "widget_too_long", "widget_not_sent",
  "widget_expired",
  "console_title", "console_key", "console_key_hint", "console_sign_in", "console_sign_out", "console_signed_in",
  "console_skills", "console_not_agent", "console_language", "console_queue", "console_queue_empty",
  "console_priority", "console_waiting", "console_reason", "console_channel", "console_tier", "console_skill",
  "console_question", "console_claim", "console_claimed", "console_claim_lost", "console_new", "console_mine", "console_mine_empty",
  "console_open", "console_customer", "console_summary", "console_first_ask", "console_last_message",
  "console_understood", "console_nothing_understood", "console_candidates", "console_no_candidates",
  "console_insert", "console_transcript", "console_earlier", "console_earlier_none", "console_notes",
  "console_reply", "console_send", "console_transfer", "console_transfer_to", "console_note", "console_resolve",
  "console_resolve_note", "console_transferred", "console_resolved", "console_gone", "console_callback",
  "console_seconds", "console_minutes", "console_hours",
  "reason_customer_request", "reason_low_confidence", "reason_repeated_failure", "reason_frustration",
  "reason_always_human",
  "channel_chat", "channel_email", "channel_social", "channel_phone", "channel_messaging",
  "tier_basic", "tier_standard", "tier_advanced",
  "editor_title", "editor_key", "editor_author", "editor_not_editor", "editor_entries", "editor_gaps", "editor_search",
  "editor_search_go", "editor_all_languages", "editor_all_categories", "editor_show_retired", "editor_new",
  "editor_none", "editor_id", "editor_category", "editor_skill", "editor_question", "editor_phrasings",
  "editor_phrasing", "editor_add_phrasing", "editor_remove", "editor_answer", "editor_save", "editor_retire",
  "editor_retired", "editor_retired_done", "editor_saved", "editor_invalid", "editor_conflict", "editor_theirs",
  "editor_use_theirs", "editor_add_theirs", "editor_revision_of", "editor_history", "editor_revision",
  "editor_no_change", "editor_action_create", "editor_action_update", "editor_action_retire", "editor_action_import",
  "editor_yes", "editor_no", "editor_try", "editor_try_text", "editor_try_go", "editor_detect", "editor_decision",
  "editor_why", "editor_replies", "editor_intents", "editor_matches", "editor_no_matches", "editor_gaps_total",
  "editor_gaps_none", "editor_gap_count", "editor_gap_attach", "editor_gap_attach_go", "editor_gap_attached",
  "editor_gap_new", "editor_gap_from", "editor_retrain_running", "editor_retrain_pending", "editor_retrain_failed",
  "editor_retrain_shipped", "editor_retrain_done", "decision_answer", "decision_clarify", "decision_handoff",
  "decision_small_talk", "decision_silent", "decision_off_topic", "decision_menu", "decision_rating",
  "dashboard_title", "dashboard_key", "dashboard_not_allowed", "dashboard_range", "dashboard_since",
  "dashboard_until", "dashboard_granularity", "dashboard_day", "dashboard_hour", "dashboard_filters", "dashboard_all",
  "dashboard_show", "dashboard_loading", "dashboard_range_said", "dashboard_range_backwards",
  "dashboard_range_too_long", "dashboard_kpis", "dashboard_kpi", "dashboard_value", "dashboard_target",
  "dashboard_status", "dashboard_met", "dashboard_breached", "dashboard_no_data", "dashboard_trends",
  "dashboard_period", "dashboard_median", "dashboard_p90", "dashboard_target_line", "dashboard_queue",
  "dashboard_waiting_now", "dashboard_oldest", "dashboard_top_intents", "dashboard_top_gaps", "dashboard_intent",
  "dashboard_count", "dashboard_examples", "dashboard_none", "dashboard_no_intent",
  "kpi_conversations", "kpi_contacts", "kpi_deflection", "kpi_handoff_rate", "kpi_handoffs", "kpi_median_wait",
  "kpi_p90_wait", "kpi_waited_beyond", "kpi_unclaimed", "kpi_handle_time", "kpi_resolution", "kpi_csat",
  "kpi_mean_rating", "kpi_rating_response", "kpi_clarification", "kpi_off_topic", "chart_handoffs_by_reason",
  "chart_wait",
] as const;

export type Key = (typeof KEYS)[number];

/// The page's data block, as loket writes it.
export interface PageConfig {
  default_language: string;
  max_message_bytes: number;
  languages: Record<string, { name: string; texts: Record<string, string> }>;
}

/// The data block of this page (an empty configuration when the page was opened without loket, as a file).
export function pageConfig(): PageConfig {
  const block = document.getElementById("loket-page");
  const parsed = JSON.parse(block?.textContent || "{}") as Partial<PageConfig>;
  return { default_language: "nl", max_message_bytes: 4096, languages: {}, ...parsed };
}

/// The first served language among `candidates` ("nl-BE" counts as "nl"), else the default.
export function pickLanguage(page: PageConfig, ...candidates: (string | null | undefined)[]): string {
  for (const candidate of candidates) {
    const code = (candidate ?? "").split("-")[0].toLowerCase();
    if (code in page.languages) return code;
  }
  return page.default_language;
}

/// The texts of one language.
export class Texts {
  readonly language: string;
  private readonly texts: Record<string, string>;

  constructor(page: PageConfig, language: string) {
    this.language = language;
    this.texts = page.languages[language]?.texts ?? {};
  }

  /// The text of `key` with `{name}` placeholders filled in; the key itself when the text is missing, so a gap
  /// shows rather than hides.
  t(key: Key, values: Record<string, string | number> = {}): string {
    const text = this.texts[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
  }

  /// Fills the elements under `root` that name a key: `data-t` (their text), `data-t-label` (`aria-label`) and
  /// `data-t-placeholder`; and sets the document's language.
  apply(root: ParentNode = document): void {
    document.documentElement.lang = this.language;
    for (const element of root.querySelectorAll<HTMLElement>("[data-t]")) {
      element.textContent = this.t(element.dataset.t as Key);
    }
    for (const element of root.querySelectorAll<HTMLElement>("[data-t-label]")) {
      element.setAttribute("aria-label", this.t(element.dataset.tLabel as Key));
    }
    for (const element of root.querySelectorAll<HTMLInputElement>("[data-t-placeholder]")) {
      element.placeholder = this.t(element.dataset.tPlaceholder as Key);
    }
  }
}
