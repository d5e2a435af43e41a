//! The knowledge editor at `/editor` in a real browser (the harness of `browser.rs`: Debian's chromium through
//! chromedriver, against a real loket on a loopback port). Two editors and a customer in three browser sessions:
//! keys of the wrong role are refused clearly; an entry made in nl and en answers the customer's widget at once;
//! the customer's unanswered question shows up as a knowledge gap and becomes an entry that answers it; an invalid
//! entry gets its error at the field and nothing is stored; two editors change one entry and the second sees the
//! first's version beside their own and keeps their text. Also timed: how soon the page is usable after a load.

use std::time::{Duration, Instant};

use loket::server::pb;
use serde_json::json;

use crate::browser::{Browser, COUNT, ENTER, LAST, create_key, have_browser, on_a_large_stack, ui_texts};
use crate::harness::{TestServer, test_config};

/// Loads of the page timed for how soon it is usable.
const LOADS: usize = 5;

#[test]
fn two_editors_and_a_customer_in_chromium_from_new_entry_to_merged_conflict() {
    if have_browser() {
        on_a_large_stack(editors_and_a_customer);
    }
}

/// Opens `/editor` and signs in with `key` as `name` by keyboard alone.
async fn sign_in(editor: &Browser, server: &TestServer, key: &str, name: &str) {
    editor.go(&format!("http://{}/editor", server.addr)).await;
    editor.until("the sign-in form", "return !document.getElementById('sign-in').hidden;", json!([])).await;
    editor.tab_to("#key").await;
    editor.keys(key).await;
    editor.tab_to("#author").await;
    editor.keys(name).await;
    editor.keys(ENTER).await;
}

async fn workbench(editor: &Browser) {
    editor.until("the workbench", "return !document.getElementById('workbench').hidden;", json!([])).await;
    editor
        .until("the entries", "return document.querySelectorAll('#faq-list button[data-faq]').length > 0;", json!([]))
        .await;
}

/// Whether the status line says `arguments[0]` (its start).
const NOTICE_STARTS: &str = "return document.getElementById('notice').textContent.startsWith(arguments[0]);";

/// Sets the value of the form control `arguments[0]` to `arguments[1]`, as typing would.
const SET: &str = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                   e.dispatchEvent(new Event('input', { bubbles: true })); return true;";

/// Fills one language of the entry form: question, answer and `phrasings` (added with the "add" button).
async fn fill_language(editor: &Browser, language: &str, question: &str, phrasings: &[&str], answer: &str) {
    editor.run(SET, json!([format!("#f-{language}-question"), question])).await;
    for phrasing in phrasings {
        editor.click(&format!("#f-{language}-add")).await;
        let last = format!("#f-{language}-phrasings li:last-child input");
        editor.run(SET, json!([last, phrasing])).await;
    }
    editor.run(SET, json!([format!("#f-{language}-answer"), answer])).await;
}

/// Opens entry `id` from the list.
async fn open_entry(editor: &Browser, id: &str) {
    editor.click(&format!("#faq-list button[data-faq='{id}']")).await;
    editor
        .until(
            "the entry",
            "return document.getElementById('entry-title').textContent === arguments[0] && \
             !document.getElementById('history').hidden;",
            json!([id]),
        )
        .await;
}

/// The customer asks `text` in the widget (whose chat frame is current); returns the bot's reply and how long it
/// took from the Enter to the reply in the list.
async fn ask(widget: &Browser, text: &str) -> (String, Duration) {
    let before = widget.run(COUNT, json!(["#log", "bot"])).await.as_u64().unwrap();
    widget.run(SET, json!(["#text", text])).await;
    widget.run("document.getElementById('text').focus(); return true;", json!([])).await;
    let asked = Instant::now();
    widget.keys(ENTER).await;
    let more = "return document.querySelectorAll('#log li.message.bot').length > arguments[0];";
    widget.until("the bot's reply", more, json!([before])).await;
    let took = asked.elapsed();
    let reply = widget.run(LAST, json!(["#log", "bot"])).await;
    (reply.as_str().unwrap_or_default().to_owned(), took)
}

async fn editors_and_a_customer() {
    let texts = ui_texts();
    let en = &texts["en"];
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let eva_key = create_key(&server, "eva", pb::Role::Editor, "", &[]).await;
    let frank_key = create_key(&server, "frank", pb::Role::Editor, "", &[]).await;
    let agent_key = create_key(&server, "anna", pb::Role::Agent, "Anna", &[]).await;
    let widget_key = create_key(&server, "demo", pb::Role::Widget, "", &[]).await;
    let (eva, frank, widget) =
        tokio::join!(Browser::start(1400, 950), Browser::start(1400, 1000), Browser::start(1000, 760));

    // Keys that may not edit: an agent's key says it is not an editor's; an unknown key is not signed in.
    sign_in(&eva, &server, &agent_key, "").await;
    eva.until("the refusal", NOTICE_STARTS, json!([en["editor_not_editor"]])).await;
    assert_eq!(eva.run("return document.getElementById('workbench').hidden;", json!([])).await, json!(true));
    sign_in(&eva, &server, "lk_forged_0123", "").await;
    eva.until("the refusal", NOTICE_STARTS, json!([en["error_unauthenticated"]])).await;

    // An editor's key: the entries by category. Loads of the page are timed in the page's own clock, from the
    // start of the navigation to the entries listed (the key kept in the tab, never in the address).
    sign_in(&eva, &server, &eva_key, "eva").await;
    workbench(&eva).await;
    assert_eq!(eva.run("return location.href.includes(arguments[0]);", json!([eva_key])).await, json!(false));
    let categories = eva.run("return document.querySelectorAll('#faq-list section.category').length;", json!([])).await;
    assert_eq!(categories, json!(8), "the shipped knowledge base's categories");
    let mut ready = Vec::new();
    for _ in 0..LOADS {
        eva.reload().await;
        let mark =
            "const m = performance.getEntriesByName('loket-editor-ready'); return m.length ? m[0].startTime : 0;";
        ready.push(eva.until("the page ready", mark, json!([])).await.as_f64().unwrap());
    }
    ready.sort_by(f64::total_cmp);
    println!(
        "editor: navigation to entries listed: median {:.0} ms, max {:.0} ms over {LOADS} loads",
        ready[2], ready[4]
    );
    // The target is 1 s; the bound here leaves room for a loaded CI machine, the figures are printed.
    assert!(ready[2] < 1000.0, "median {} ms", ready[2]);

    // Searching by words and a language narrows the list.
    eva.run(SET, json!(["#search-text", "retour"])).await;
    eva.run("document.getElementById('search-language').value = 'nl'; return true;", json!([])).await;
    eva.click("#search button[type=submit]").await;
    let narrowed = "const n = document.querySelectorAll('#faq-list button[data-faq]').length; return n > 0 && n < 10;";
    eva.until("the search", narrowed, json!([])).await;
    eva.run(SET, json!(["#search-text", ""])).await;
    eva.run("document.getElementById('search-language').value = ''; return true;", json!([])).await;
    eva.click("#search button[type=submit]").await;
    eva.until("every entry", "return document.querySelectorAll('#faq-list button[data-faq]').length > 40;", json!([]))
        .await;

    // The customer has the widget open before the entry exists.
    widget.go(&format!("http://{}/demo#key={widget_key}", server.addr)).await;
    widget.open_widget().await;
    widget.until("the greeting", COUNT, json!(["#log", "bot"])).await;

    // A new entry in nl and en, the new-entry button and the phrasings' add button by keyboard.
    eva.tab_to("#new-entry").await;
    eva.keys(ENTER).await;
    eva.until("the id focused", "return document.activeElement.id === 'f-id';", json!([])).await;
    eva.keys("bike-repair").await;
    eva.run(SET, json!(["#f-category", "warranty"])).await;
    eva.run(SET, json!(["#f-skill", "repairs"])).await;
    eva.tab_to("#f-nl-add").await;
    eva.keys(ENTER).await;
    eva.until("a phrasing focused", "return document.activeElement.classList.contains('phrasing');", json!([])).await;
    eva.keys("kunnen jullie mijn fiets repareren").await;
    fill_language(
        &eva,
        "nl",
        "Repareren jullie ook fietsen?",
        &["fietsreparatie bij jullie"],
        "Ja, we repareren fietsen in de winkel; een afspraak maak je via Mijn account.",
    )
    .await;
    fill_language(
        &eva,
        "en",
        "Do you repair bicycles?",
        &["can you fix my bike", "bicycle repair service"],
        "<b>Yes</b>, we repair bicycles in the store; book through My account.",
    )
    .await;
    eva.click("#save").await;
    eva.until("saved", NOTICE_STARTS, json!([en["editor_saved"].replace("{id}", "bike-repair").split(',').next()]))
        .await;
    let saved = Instant::now();

    // The customer is answered from it at once.
    let (reply, took) = ask(&widget, "repareren jullie ook fietsen").await;
    let since_saved = saved.elapsed();
    println!("widget: answered from the new entry {since_saved:?} after the save ({took:?} from the Enter)");
    assert!(reply.starts_with("Ja, we repareren fietsen"), "{reply}");
    assert!(since_saved < Duration::from_secs(1), "{since_saved:?}");

    // "Try it" in English, beside the entry: the decision, the matches and why; the answer's markup as text.
    eva.run(SET, json!(["#try-text", "can you repair my bicycle"])).await;
    eva.run("document.getElementById('try-language').value = 'en'; return true;", json!([])).await;
    eva.click("#try button[type=submit]").await;
    let answered = "const d = document.querySelector('#try-result .decision'); return d && d.dataset.kind === 'ANSWER' \
                    && d.textContent.includes('bike-repair');";
    eva.until("the try-it answer", answered, json!([])).await;
    assert!(eva.text("#try-result .replies").await.starts_with("<b>Yes</b>"), "as text");
    assert!(eva.text("#try-result .matches").await.contains("bike-repair"));
    assert!(!eva.text("#try-result .why").await.is_empty());
    let markup = "return document.querySelectorAll('#workbench b, #workbench img, #workbench script').length;";
    assert_eq!(eva.run(markup, json!([])).await, json!(0), "never as markup");

    // An unanswered question of the customer becomes a gap; a new entry from it answers the next customer.
    let (reply, _) = ask(&widget, "mag mijn papegaai mee de winkel in").await;
    println!("widget: the unanswered question got {reply:?}");
    eva.click("#tab-gaps").await;
    let gap = "const li = [...document.querySelectorAll('#gaps li.gap')].find((g) => g.textContent.includes('papegaai')); \
               return li ? li.dataset.gap : null;";
    let gap_id = eva.until("the gap", gap, json!([])).await.as_str().unwrap().to_owned();
    assert!(eva.text(&format!("#gaps li[data-gap='{gap_id}'] h3")).await.starts_with('1'), "counted");
    eva.click(&format!("button[data-create='{gap_id}']")).await;
    let prefilled = "return document.getElementById('f-nl-question').value === arguments[0];";
    eva.until("the form from the gap", prefilled, json!(["mag mijn papegaai mee de winkel in"])).await;
    eva.run(SET, json!(["#f-id", "pets-in-store"])).await;
    eva.run(SET, json!(["#f-category", "contact"])).await;
    eva.run(SET, json!(["#f-skill", "general"])).await;
    let (nl_pets, en_pets) =
        ("Alleen hulphonden mogen mee de winkel in.", "Only assistance dogs may come into the store.");
    fill_language(
        &eva,
        "nl",
        "Mag mijn huisdier mee de winkel in?",
        &["huisdier in de winkel", "mag mijn hond mee"],
        nl_pets,
    )
    .await;
    fill_language(
        &eva,
        "en",
        "Can I bring my pet into the store?",
        &["pets in the store", "can my dog come along"],
        en_pets,
    )
    .await;
    eva.click("#save").await;
    eva.until("saved", NOTICE_STARTS, json!([en["editor_saved"].replace("{id}", "pets-in-store").split(',').next()]))
        .await;
    let stored = server.knowledge().await.get_faq(pb::GetFaqRequest { id: "pets-in-store".into() }).await.unwrap();
    let phrasings = &stored.into_inner().translations["nl"].phrasings;
    assert!(phrasings.iter().any(|p| p == "mag mijn papegaai mee de winkel in"), "{phrasings:?}");
    eva.click("#tab-gaps").await;
    let closed = "return !document.querySelector(`#gaps li[data-gap='${arguments[0]}']`);";
    eva.until("the gap closed", closed, json!([gap_id])).await;
    eva.click("#tab-entries").await;
    // A new conversation (the first one waits for a person now).
    widget.run("sessionStorage.removeItem('loket.conversation'); return true;", json!([])).await;
    widget.reload().await;
    widget.open_widget().await;
    widget
        .until("a new greeting", "return document.querySelectorAll('#log li.message').length === 1;", json!([]))
        .await;
    let (reply, _) = ask(&widget, "mag mijn papegaai mee de winkel in").await;
    assert_eq!(reply, nl_pets);

    // Bad input: an answer emptied shows its error at the field, and nothing is stored.
    open_entry(&eva, "bike-repair").await;
    eva.run(SET, json!(["#f-en-answer", "   "])).await;
    eva.click("#save").await;
    eva.until(
        "the field error",
        "return document.getElementById('error-translations-en-answer').textContent;",
        json!([]),
    )
    .await;
    assert!(eva.text("#notice").await.starts_with(&en["editor_invalid"][..20]));
    let invalid = "return document.getElementById('f-en-answer').getAttribute('aria-invalid');";
    assert_eq!(eva.run(invalid, json!([])).await, json!("true"));
    let mut knowledge = server.knowledge().await;
    let unchanged = knowledge.get_faq(pb::GetFaqRequest { id: "bike-repair".into() }).await.unwrap().into_inner();
    assert_eq!(unchanged.revision, 1, "nothing saved");

    // Two editors open the entry; the first saves, the second is told and sees the first's version beside
    // their own, keeps their text, takes the first's new phrasing and saves on top.
    open_entry(&eva, "bike-repair").await;
    sign_in(&frank, &server, &frank_key, "frank").await;
    workbench(&frank).await;
    open_entry(&frank, "bike-repair").await;
    let (evas, franks) = ("Ja! Maak een afspraak via Mijn account.", "Ja, in elke winkel, zonder afspraak.");
    eva.run(SET, json!(["#f-nl-answer", evas])).await;
    eva.click("#f-nl-add").await;
    eva.run(SET, json!(["#f-nl-phrasings li:last-child input", "doen jullie fietsonderhoud"])).await;
    eva.click("#save").await;
    eva.until("saved", NOTICE_STARTS, json!([en["editor_saved"].replace("{id}", "bike-repair").split(',').next()]))
        .await;
    frank.run(SET, json!(["#f-nl-answer", franks])).await;
    frank.click("#save").await;
    let conflict = en["editor_conflict"].replace("{name}", "eva").replace("{n}", "2");
    frank.until("the conflict", NOTICE_STARTS, json!([&conflict[..40]])).await;
    let theirs = "const t = document.querySelector(`.field[data-field='${arguments[0]}'] .theirs`); \
                  return t && !t.hidden ? t.querySelector('p').textContent : null;";
    assert_eq!(frank.until("their answer", theirs, json!(["translations.nl.answer"])).await, json!(evas));
    let theirs_phrasings = frank.run(theirs, json!(["translations.nl.phrasings"])).await;
    assert!(theirs_phrasings.as_str().unwrap().contains("doen jullie fietsonderhoud"), "{theirs_phrasings}");
    assert_eq!(frank.run("return document.getElementById('f-nl-answer').value;", json!([])).await, json!(franks));
    // README's picture: the conflict, the history with the other editor's change, and a question tried.
    frank.run(SET, json!(["#try-text", "kunnen jullie mijn fiets maken"])).await;
    frank.click("#try button[type=submit]").await;
    frank.until("the try-it result", "return !!document.querySelector('#try-result .decision');", json!([])).await;
    let eva_in_history = "return document.querySelectorAll('#revisions > li').length === 2;";
    frank.until("eva's change in the history", eva_in_history, json!([])).await;
    frank.screenshot("editor.png").await;
    frank.click(".field[data-field='translations.nl.phrasings'] .theirs button").await;
    frank.click("#save").await;
    frank
        .until("saved", NOTICE_STARTS, json!([en["editor_saved"].replace("{id}", "bike-repair").split(',').next()]))
        .await;
    let merged = knowledge.get_faq(pb::GetFaqRequest { id: "bike-repair".into() }).await.unwrap().into_inner();
    assert_eq!(merged.revision, 3);
    assert_eq!(merged.translations["nl"].answer, franks);
    assert!(merged.translations["nl"].phrasings.iter().any(|p| p == "doen jullie fietsonderhoud"), "merged");
    assert_eq!(merged.updated_by, "frank");

    // The history: each change as a readable diff, newest first.
    let newest = "const li = document.querySelector('#revisions > li'); \
                  return li && li.querySelector('.revision').textContent.startsWith(arguments[0]) ? li.textContent : null;";
    let revision = en["editor_revision"].replace("{n}", "3");
    let newest =
        frank.until("revision 3 in the history", newest, json!([&revision[..revision.find(" ·").unwrap()]])).await;
    let newest = newest.as_str().unwrap();
    assert!(newest.contains(evas) && newest.contains(franks), "old and new answer: {newest}");
    assert_eq!(frank.run("return document.querySelectorAll('#revisions > li').length;", json!([])).await, json!(3));

    // A question handed off for want of an answer, added from the gap list to the entry loket thought closest.
    let mut chat = server.chat().await;
    let started = crate::harness::start_conversation(&mut chat, "en").await;
    let parcel = "my parcel went to the neighbours and they are on holiday";
    crate::harness::send(&mut chat, &crate::harness::conversation_id(&started), parcel).await;
    eva.click("#tab-gaps").await;
    let gap = "const li = [...document.querySelectorAll('#gaps li.gap')].find((g) => g.textContent.includes(arguments[0])); \
               return li ? li.dataset.gap : null;";
    let gap_id = eva.until("the parcel gap", gap, json!([parcel])).await.as_str().unwrap().to_owned();
    let choose = format!("#attach-{gap_id}");
    let closest = eva.run("return document.querySelector(arguments[0]).value;", json!([choose])).await;
    println!("editor: the parcel gap's closest entry: {closest}");
    eva.run(
        "document.querySelector(arguments[0]).value = arguments[1]; return true;",
        json!([choose, "delivery-not-received"]),
    )
    .await;
    eva.click(&format!("button[data-attach='{gap_id}']")).await;
    eva.until(
        "attached",
        NOTICE_STARTS,
        json!([en["editor_gap_attached"].replace("{n}", "1").replace("{id}", "delivery-not-received")]),
    )
    .await;
    let target =
        knowledge.get_faq(pb::GetFaqRequest { id: "delivery-not-received".into() }).await.unwrap().into_inner();
    assert!(target.translations["en"].phrasings.iter().any(|p| p == parcel), "{:?}", target.translations["en"]);
    eva.until("the gap closed", closed, json!([gap_id])).await;

    // Retiring: the entry leaves the list and is no longer answered.
    eva.click("#tab-entries").await;
    open_entry(&eva, "bike-repair").await;
    eva.click("#retire").await;
    eva.until("retired", NOTICE_STARTS, json!([en["editor_retired_done"].replace("{id}", "bike-repair")])).await;
    let gone = "return !document.querySelector(\"#faq-list button[data-faq='bike-repair']\");";
    eva.until("the entry gone from the list", gone, json!([])).await;
    let retired = knowledge.get_faq(pb::GetFaqRequest { id: "bike-repair".into() }).await.unwrap().into_inner();
    assert!(retired.retired && retired.revision == 4 && retired.updated_by == "eva", "{retired:?}");

    // The retrain's state is on every screen (off in tests: the shipped model).
    assert_eq!(frank.text("#retrain").await, en["editor_retrain_shipped"]);
    drop((eva, frank, widget));
    server.stop().await;
}

#[test]
fn the_editor_shows_a_background_retrain_starting_without_a_reload() {
    if have_browser() {
        on_a_large_stack(retrain_followed);
    }
}

async fn retrain_followed() {
    let texts = ui_texts();
    let en = &texts["en"];
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // A retrain soon after the edit: what is tested is the page following its state.
    config.knowledge.retrain = true;
    config.knowledge.retrain_delay_ms = 300;
    let server = TestServer::start(config).await;
    let key = create_key(&server, "eva", pb::Role::Editor, "", &[]).await;
    let editor = Browser::start(1200, 800).await;
    sign_in(&editor, &server, &key, "eva").await;
    workbench(&editor).await;
    let shipped = "return document.getElementById('retrain').textContent === arguments[0];";
    editor.until("the shipped model", shipped, json!([en["editor_retrain_shipped"]])).await;
    // Every state the header shows from now on, without a reload.
    let record = "window.__states = []; new MutationObserver(() => \
                  window.__states.push(document.getElementById('retrain').textContent)) \
                  .observe(document.getElementById('retrain'), { childList: true, characterData: true, subtree: true }); \
                  return true;";
    editor.run(record, json!([])).await;

    let mut faq = server.knowledge().await.get_faq(pb::GetFaqRequest { id: "return-how".into() }).await.unwrap();
    let faq = faq.get_mut();
    faq.translations.get_mut("en").unwrap().phrasings.push("where do i send my return parcel".into());
    let update = pb::UpdateFaqRequest { faq: Some(faq.clone()), update_mask: None, author: "test".into() };
    let version = server.knowledge().await.update_faq(update).await.unwrap().into_inner();
    assert_eq!(version.revision, faq.revision + 1);

    // Pending or running, without a reload. (A whole retrain takes 40 s of CPU even at one pass; the server's
    // stop cancels it.)
    let busy = "return [arguments[0], arguments[1]].includes(document.getElementById('retrain').textContent);";
    let pending_or_running = json!([en["editor_retrain_pending"], en["editor_retrain_running"]]);
    editor.until("the retrain under way", busy, pending_or_running).await;
    let states = editor.run("return window.__states;", json!([])).await;
    println!("editor: the retrain as the header showed it: {states}");
    drop(editor);
    server.stop().await;
}
