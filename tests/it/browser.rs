//! The customer widget and the agent console in a real browser: Debian's chromium driven by chromedriver over
//! WebDriver (plain HTTP on loopback, no client crate), against a real loket on a loopback port. One scenario has a
//! customer and two agents in three browser sessions; another has what must be refused or survived (a page of an
//! origin loket does not allow, a forged token, a dropped connection, the wrong keys, a phone's width) and a
//! transfer. Where chromium or chromedriver
//! is missing the tests say SKIPPED. With `LOKET_SCREENSHOTS=1` they write README's pictures into `docs/`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use loket::server::pb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestServer, stored_handoff, test_config};
use crate::web::http1;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's codes of the keys pressed here.
pub(crate) const TAB: &str = "\u{E004}";
pub(crate) const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Whether the browser is installed; says SKIPPED when not.
pub(crate) fn have_browser() -> bool {
    let there = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !there {
        println!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
    }
    there
}

/// A chromedriver process and one browser session in it; both end on drop.
pub(crate) struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless chromium with a window of `width` × `height` CSS pixels.
    pub(crate) async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--lang=en-US",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display()), format!("--window-size={width},{height}")])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let mut browser = Browser { driver, addr, session: String::new(), _profile: profile };
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"].as_str().expect("a session").to_owned();
        // Set again once open: the command line's size has a floor (500 px) that a phone's width is under.
        browser.session("POST", "/window/rect", json!({ "width": width, "height": height })).await;
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" || method == "DELETE" { Vec::new() } else { body.to_string().into_bytes() };
        let reply = http1(self.addr, method, path, &[("content-type", "application/json")], &body).await;
        let value: Value = serde_json::from_slice(&reply.body).expect("WebDriver answers JSON");
        assert_eq!(reply.status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body).await
    }

    pub(crate) async fn go(&self, url: &str) {
        self.session("POST", "/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body) in the page with `args`, returning its value.
    pub(crate) async fn run(&self, script: &str, args: Value) -> Value {
        self.session("POST", "/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Runs `script`, which calls its last argument with the result (for promises).
    async fn run_async(&self, script: &str, args: Value) -> Value {
        self.session("POST", "/execute/async", json!({ "script": script, "args": args })).await
    }

    /// Waits until `script` returns something truthy, and returns it.
    pub(crate) async fn until(&self, what: &str, script: &str, args: Value) -> Value {
        // Generous: CI runs this beside the rest of the suite on 2 cores (once, under such load, 15 s ran out).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.run(script, args.clone()).await;
            if !(value.is_null() || value == json!(false) || value == json!(0) || value == json!("")) {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of the element `css` (empty when there is none).
    pub(crate) async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';";
        self.run(script, json!([css])).await.as_str().unwrap_or_default().to_owned()
    }

    async fn element(&self, css: &str) -> Value {
        let found = self.session("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        json!({ ELEMENT: found[ELEMENT] })
    }

    pub(crate) async fn click(&self, css: &str) {
        let element = self.element(css).await;
        let id = element[ELEMENT].as_str().unwrap().to_owned();
        self.session("POST", &format!("/element/{id}/click"), json!({})).await;
    }

    /// Types `text` into the element `css` (WebDriver focuses it first).
    pub(crate) async fn type_text(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        let id = element[ELEMENT].as_str().unwrap().to_owned();
        self.session("POST", &format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    /// Presses `keys` one after the other on whatever has the focus, as a keyboard would.
    pub(crate) async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| [json!({ "type": "keyDown", "value": c }), json!({ "type": "keyUp", "value": c })])
            .collect();
        let body = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] });
        self.session("POST", "/actions", body).await;
    }

    /// Presses Tab until the element with the focus matches `css`: it is reachable by keyboard.
    pub(crate) async fn tab_to(&self, css: &str) {
        let focused = "return !!document.activeElement && document.activeElement.matches(arguments[0]);";
        for _ in 0..80 {
            if self.run(focused, json!([css])).await == json!(true) {
                return;
            }
            self.keys(TAB).await;
        }
        panic!("Tab never reaches {css}");
    }

    /// Opens the widget on a shop page (once its launcher is labelled) and goes into its iframe.
    async fn open_widget(&self) {
        let shown = "return !document.querySelector('button[data-loket=launcher]').hidden;";
        self.until("the launcher", shown, json!([])).await;
        self.click("button[data-loket=launcher]").await;
        self.enter_widget().await;
    }

    /// Into the widget's iframe (from the top page).
    async fn enter_widget(&self) {
        let frame = self.element("iframe").await;
        self.session("POST", "/frame", json!({ "id": frame })).await;
    }

    /// Back to the top page.
    async fn top(&self) {
        self.session("POST", "/frame", json!({ "id": null })).await;
    }

    pub(crate) async fn reload(&self) {
        self.top().await;
        self.session("POST", "/refresh", json!({})).await;
    }

    /// Writes `docs/<name>` when `LOKET_SCREENSHOTS=1` asks for README's pictures; a normal run writes nothing
    /// tracked.
    pub(crate) async fn screenshot(&self, name: &str) {
        if std::env::var_os("LOKET_SCREENSHOTS").is_none_or(|v| v != "1") {
            return;
        }
        let png = self.session("GET", "/screenshot", Value::Null).await;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
        std::fs::write(path, decode_base64(png.as_str().unwrap())).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the browser through the driver (also when the test failed), then end the driver.
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            if let Ok(mut stream) = std::net::TcpStream::connect(self.addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                    self.session, self.addr
                );
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.read(&mut [0u8; 1024]);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !matches!(c, b'=' | b'\n' | b'\r')).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &c)| n | u32::from(value(c)) << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// The pages' texts per language, from the locale files, as the pages get them.
pub(crate) fn ui_texts() -> BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base");
    let locales = loket::knowledge::load_locales(&dir, &["nl".into(), "en".into()]).unwrap();
    locales.into_iter().map(|(language, locale)| (language, locale.ui)).collect()
}

/// The number of messages in the widget or console list `list` by `author` (customer, bot, agent, system), or
/// all with "".
const COUNT: &str =
    "return document.querySelectorAll(arguments[0] + ' li.message' + (arguments[1] ? '.' + arguments[1] : '')).length;";
/// The text of the last message in list `arguments[0]` by `arguments[1]`.
const LAST: &str = "const all = document.querySelectorAll(arguments[0] + ' li.message.' + arguments[1] + ' p'); \
                    return all.length ? all[all.length - 1].textContent : null;";
/// The author label of the last message in list `arguments[0]` by `arguments[1]`.
const LAST_AUTHOR: &str = "const all = document.querySelectorAll(arguments[0] + ' li.message.' + arguments[1] + ' .author'); \
                           return all.length ? all[all.length - 1].textContent : null;";
/// Whether any element the page made from text is markup: an image, bold text or a script in `arguments[0]`.
const MARKUP: &str = "return document.querySelectorAll(arguments[0] + ' img, ' + arguments[0] + ' b, ' + arguments[0] + ' script').length;";

/// Arms the widget to time the next reply: from the Enter that sends a message to the first frame drawn after the
/// bot's reply is in the list (and to the reply being in the list), in the page's own clock.
const TIME_NEXT_REPLY: &str = "window.__latency = null; const log = document.getElementById('log'); \
    const before = log.querySelectorAll('li.message.bot').length; let pressed = null; \
    document.getElementById('text').addEventListener('keydown', (e) => { \
      if (e.key === 'Enter' && pressed === null) pressed = performance.now(); }, { capture: true }); \
    new MutationObserver((_, observer) => { \
      if (pressed === null || log.querySelectorAll('li.message.bot').length <= before) return; \
      observer.disconnect(); const listed = performance.now() - pressed; \
      requestAnimationFrame(() => { window.__latency = [listed, performance.now() - pressed]; }); \
    }).observe(log, { childList: true }); return true;";

/// A FAQ entry whose question and answer hold markup, as an editor's mistake or a hostile editor might write them.
fn gift_wrap() -> pb::Faq {
    let translation = |question: &str, phrasings: &[&str], answer: &str| pb::FaqTranslation {
        question: question.into(),
        phrasings: phrasings.iter().map(|p| p.to_string()).collect(),
        answer: answer.into(),
    };
    pb::Faq {
        id: "gift-wrap".into(),
        category: "ordering".into(),
        skill: "orders".into(),
        translations: HashMap::from([
            (
                "nl".to_string(),
                translation(
                    "Kunnen jullie mijn bestelling als <i>cadeau</i> inpakken?",
                    &["kan ik mijn bestelling als cadeau laten inpakken", "cadeauverpakking bij mijn bestelling"],
                    "<img src=x onerror=\"document.title='owned'\">Ja, inpakken als cadeau kost 2,50 euro.",
                ),
            ),
            (
                "en".to_string(),
                translation(
                    "Can you <i>gift</i> wrap my order?",
                    &["can my order be gift wrapped", "gift wrapping for my order"],
                    "<img src=x onerror=\"document.title='owned'\">Yes, gift wrapping costs 2.50 euros.",
                ),
            ),
        ]),
        ..Default::default()
    }
}

pub(crate) async fn create_key(
    server: &TestServer,
    name: &str,
    role: pb::Role,
    display_name: &str,
    skills: &[&str],
) -> String {
    let request = pb::CreateApiKeyRequest {
        name: name.into(),
        role: role.into(),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        display_name: display_name.into(),
    };
    server.admin().await.create_api_key(request).await.unwrap().into_inner().token
}

/// Opens the console at `/agent` and signs in with `key` by keyboard alone.
async fn sign_in(console: &Browser, server: &TestServer, key: &str) {
    console.go(&format!("http://{}/agent", server.addr)).await;
    console.until("the sign-in form", "return !document.getElementById('sign-in').hidden;", json!([])).await;
    console.tab_to("#key").await;
    console.keys(key).await;
    console.keys(ENTER).await;
}

async fn signed_in(console: &Browser) {
    console.until("the desk", "return !document.getElementById('desk').hidden;", json!([])).await;
}

/// Runs `scenario` on a runtime of its own in a thread with a large stack: polling a scenario this long needs more
/// than a test thread's 2 MiB in a debug build.
pub(crate) fn on_a_large_stack<F: Future<Output = ()> + Send + 'static>(scenario: impl FnOnce() -> F + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(64 << 20).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(scenario());
    });
    if let Err(panic) = thread.unwrap().join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_customer_and_two_agents_in_chromium_from_question_to_stored_rating() {
    if have_browser() {
        on_a_large_stack(customer_and_two_agents);
    }
}

async fn customer_and_two_agents() {
    let texts = ui_texts();
    let (nl, en) = (&texts["nl"], &texts["en"]);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut knowledge = server.knowledge().await;
    knowledge.create_faq(pb::CreateFaqRequest { faq: Some(gift_wrap()), author: "test".into() }).await.unwrap();
    let widget_key = create_key(&server, "demo", pb::Role::Widget, "", &[]).await;
    let anna_key = create_key(&server, "anna", pb::Role::Agent, "Anna", &[]).await;
    let bob_key = create_key(&server, "bob", pb::Role::Agent, "Bob", &[]).await;
    let (widget, anna, bob) =
        tokio::join!(Browser::start(1000, 760), Browser::start(1280, 900), Browser::start(1280, 900));

    // Both agents sign in with the keyboard (the console is in the browser's English).
    sign_in(&anna, &server, &anna_key).await;
    sign_in(&bob, &server, &bob_key).await;
    signed_in(&anna).await;
    signed_in(&bob).await;
    assert!(anna.text("#who").await.contains("Anna (anna)"));
    let key_in_address = "return location.href.includes(arguments[0]);";
    assert_eq!(anna.run(key_in_address, json!([anna_key])).await, json!(false), "never in the address");

    // The customer opens the widget on the demo shop page by keyboard: Tab to the launcher, Enter; the chat's
    // input has the focus at once.
    widget.go(&format!("http://{}/demo#key={widget_key}", server.addr)).await;
    widget
        .until("the launcher", "return !document.querySelector('button[data-loket=launcher]').hidden;", json!([]))
        .await;
    assert_eq!(widget.text("button[data-loket=launcher]").await, nl["widget_launcher"], "labelled in Dutch");
    widget.tab_to("button[data-loket=launcher]").await;
    widget.keys(ENTER).await;
    widget.enter_widget().await;
    widget.until("the greeting", COUNT, json!(["#log", "bot"])).await;
    widget.until("the input focused", "return document.activeElement.id === 'text';", json!([])).await;
    assert_eq!(
        widget.run("return document.getElementById('send').textContent;", json!([])).await,
        json!(nl["widget_send"])
    );

    // A routine question is answered from the FAQ; 20 of them are timed in the page from the Enter that sends one
    // to the frame that shows the reply.
    let mut on_screen = Vec::new();
    for _ in 0..20 {
        widget.keys("wanneer wordt mijn bestelling bezorgd").await;
        widget.run(TIME_NEXT_REPLY, json!([])).await;
        widget.keys(ENTER).await;
        let measured = widget.until("the answer", "return window.__latency;", json!([])).await;
        on_screen.push(measured[1].as_f64().unwrap());
    }
    let answer = widget.run(LAST, json!(["#log", "bot"])).await;
    assert!(answer.as_str().unwrap().to_lowercase().contains("werkdag"), "an answer about delivery: {answer}");
    on_screen.sort_by(f64::total_cmp);
    let (p50, p95) = (on_screen[9], on_screen[18]);
    println!("widget: Enter to the reply on screen, in the page: p50 {p50:.1} ms, p95 {p95:.1} ms over 20");
    // The target is 150 ms at p95; the bound here leaves room for a loaded CI machine, the figure is printed.
    assert!(p95 < 1000.0, "p95 {p95} ms");

    // An answer whose FAQ text holds markup shows it as text.
    widget.keys("kan ik mijn bestelling als cadeau laten inpakken").await;
    widget.keys(ENTER).await;
    let wrapped = "const p = document.querySelector('#log li.message.bot:last-child p'); \
                   return p && p.textContent.includes('2,50') ? p.textContent : null;";
    let shown = widget.until("the gift-wrap answer", wrapped, json!([])).await;
    assert!(shown.as_str().unwrap().starts_with("<img src=x onerror="), "as text: {shown}");

    // Markup typed by the customer is text too; asking for a person reaches both consoles within 2 s.
    widget.keys("<b>ik wil een medewerker spreken over cadeau inpakken</b>").await;
    let asked = Instant::now();
    widget.keys(ENTER).await;
    let row = "return document.querySelectorAll('#queue tbody tr').length === 1;";
    anna.until("the hand-off in the queue", row, json!([])).await;
    bob.until("the hand-off in the queue", row, json!([])).await;
    let seen_after = asked.elapsed();
    println!("console: hand-off in the queue {seen_after:?} after the customer's Enter");
    assert!(seen_after < Duration::from_secs(2), "{seen_after:?}");
    assert_eq!(
        widget.run(LAST, json!(["#log", "customer"])).await,
        json!("<b>ik wil een medewerker spreken over cadeau inpakken</b>")
    );
    assert!(anna.run("return document.title;", json!([])).await.as_str().unwrap().starts_with("(1) "));
    // The queue names the customer's first question (the topic); the package adds their last message.
    assert_eq!(anna.text("#queue td.question").await, "wanneer wordt mijn bestelling bezorgd");
    let facts = anna.text("#queue tbody tr").await;
    assert!(facts.contains(&en["reason_customer_request"]) && facts.contains(&en["channel_chat"]), "{facts}");
    let handoff_id = anna.run("return document.querySelector('#queue tbody tr').dataset.handoff;", json!([])).await;
    let handoff_id = handoff_id.as_str().unwrap().to_owned();

    // Both agents click Claim at the same moment (a shared deadline on the machine's one clock): one wins, and
    // the other is told at once that a colleague was faster.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    let at = now + 700;
    let arm = "const claim = document.querySelector('button[data-claim]'); \
               setTimeout(() => claim.click(), Math.max(0, arguments[0] - Date.now())); return true;";
    anna.run(arm, json!([at])).await;
    bob.run(arm, json!([at])).await;
    let holding = "return !document.getElementById('handoff').hidden;";
    let lost = "return document.getElementById('notice').textContent.includes(arguments[0]);";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (winner, loser, name) = loop {
        let (a, b) = (anna.run(holding, json!([])).await, bob.run(holding, json!([])).await);
        if a == json!(true) {
            break (&anna, &bob, "anna");
        }
        if b == json!(true) {
            break (&bob, &anna, "bob");
        }
        assert!(Instant::now() < deadline, "nobody won the claim");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loser.until("the lost race told", lost, json!([en["console_claim_lost"]])).await;
    assert_eq!(loser.run(holding, json!([])).await, json!(false));
    let stored = stored_handoff(&server, &handoff_id).await;
    assert_eq!((stored.state(), stored.agent_id.as_str()), (pb::HandoffState::Claimed, name));
    let display = if name == "anna" { "Anna" } else { "Bob" };
    loser
        .until("the queue emptied", "return document.querySelectorAll('#queue tbody tr').length === 0;", json!([]))
        .await;
    println!("claim race won by {name}");

    // The package on one screen: the summary, what the bot understood, the candidates with their answers (as
    // text), the transcript; in the agent's list of open conversations.
    assert_eq!(winner.text("#first-ask").await, "wanneer wordt mijn bestelling bezorgd");
    assert_eq!(winner.text("#last-message").await, "<b>ik wil een medewerker spreken over cadeau inpakken</b>");
    assert!(winner.text("#intents").await.contains('%'));
    let candidate = "#candidates button[data-insert='gift-wrap']";
    winner.until("the gift-wrap candidate", "return !!document.querySelector(arguments[0]);", json!([candidate])).await;
    assert!(winner.text("#candidates").await.contains("<img src=x onerror="), "the FAQ's markup as text");
    assert_eq!(winner.run(MARKUP, json!(["#handoff"])).await, json!(0), "and never as markup");
    assert!(winner.run(COUNT, json!(["#transcript", "customer"])).await.as_u64().unwrap() >= 22);
    winner
        .until("its place in my conversations", "return document.querySelectorAll('#mine li').length === 1;", json!([]))
        .await;

    // By keyboard: the candidate's answer goes into the reply, Enter sends it; the widget shows it live under the
    // agent's display name, as text.
    winner.tab_to(candidate).await;
    winner.keys(ENTER).await;
    let reply = winner.run("return document.getElementById('reply-text').value;", json!([])).await;
    let gift_answer = "<img src=x onerror=\"document.title='owned'\">Ja, inpakken als cadeau kost 2,50 euro.";
    assert_eq!(reply, json!(gift_answer));
    winner.until("the reply box focused", "return document.activeElement.id === 'reply-text';", json!([])).await;
    winner.keys(ENTER).await;
    let shown = widget.until("the agent's message", LAST, json!(["#log", "agent"])).await;
    assert_eq!(shown, json!(gift_answer));
    assert_eq!(widget.run(LAST_AUTHOR, json!(["#log", "agent"])).await, json!(display));
    assert_eq!(widget.run(MARKUP, json!(["#log"])).await, json!(0));
    winner.until("the message in the console", LAST, json!(["#transcript", "agent"])).await;

    // The customer answers; the console shows it live. A reload of the widget keeps the conversation, once.
    widget.keys("Dank je, dat is fijn").await;
    widget.keys(ENTER).await;
    let said = "return (document.querySelector('#transcript li.message.customer:last-child p') || {}).textContent === arguments[0];";
    winner.until("the customer's reply in the console", said, json!(["Dank je, dat is fijn"])).await;
    winner.screenshot("console.png").await;
    let before = widget.run(COUNT, json!(["#log", ""])).await;
    widget.reload().await;
    widget.open_widget().await;
    let whole = "return document.querySelectorAll('#log li.message').length >= arguments[0];";
    widget.until("the whole transcript", whole, json!([before])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(widget.run(COUNT, json!(["#log", ""])).await, before, "the same messages after the reload");
    assert_eq!(widget.run(LAST_AUTHOR, json!(["#log", "agent"])).await, json!(display));

    // The agent resolves (keyboard again); the widget asks for stars; 5 stars (keyboard) are stored.
    winner.tab_to("#resolve button").await;
    winner.keys(ENTER).await;
    winner.until("the hand-off closed", "return document.getElementById('handoff').hidden;", json!([])).await;
    assert!(winner.text("#notice").await.contains(&en["console_resolved"]));
    winner
        .until("no open conversations", "return document.querySelectorAll('#mine li').length === 0;", json!([]))
        .await;
    widget.until("the stars", "return document.querySelectorAll('.stars button').length === 5;", json!([])).await;
    let star = widget
        .run("return document.querySelector('.stars button:nth-child(5)').getAttribute('aria-label');", json!([]))
        .await;
    assert_eq!(star, json!(nl["widget_star"].replace("{n}", "5")));
    widget.top().await;
    widget.screenshot("widget.png").await;
    widget.enter_widget().await;
    widget.tab_to(".stars button:nth-child(5)").await;
    widget.keys(ENTER).await;
    widget
        .until(
            "the thanks",
            "return document.getElementById('status').textContent === arguments[0];",
            json!([nl["widget_thanks"]]),
        )
        .await;
    assert_eq!(stored_handoff(&server, &handoff_id).await.rating, 5, "the rating is stored");

    // Rated: a reload keeps the transcript and does not ask again.
    let before = widget.run(COUNT, json!(["#log", ""])).await;
    widget.reload().await;
    widget.open_widget().await;
    widget.until("the whole transcript", whole, json!([before])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(widget.run("return document.querySelectorAll('.stars button').length;", json!([])).await, json!(0));

    // A message of 4 KiB goes through whole; one of more bytes is refused in the page, and stays in the input.
    let four_kib: String = "Mijn bestelling is niet compleet. ".repeat(130)[..4096].to_owned();
    let set = "const input = document.getElementById('text'); input.value = arguments[0]; input.focus(); return true;";
    widget.run(set, json!([four_kib])).await;
    widget.keys(ENTER).await;
    let whole = "const all = document.querySelectorAll('#log li.message.customer p'); \
                 return all[all.length - 1].textContent === arguments[0];";
    widget.until("the 4 KiB message, whole", whole, json!([four_kib])).await;
    let too_long = "é".repeat(2049);
    widget.run(set, json!([too_long])).await;
    widget.keys(ENTER).await;
    widget
        .until(
            "the refusal",
            "return document.getElementById('status').textContent === arguments[0];",
            json!([nl["widget_too_long"]]),
        )
        .await;
    assert_eq!(widget.run("return document.getElementById('text').value.length;", json!([])).await, json!(2049));

    // Escape closes the chat and gives the launcher the focus back.
    widget.keys(ESCAPE).await;
    widget.top().await;
    widget
        .until(
            "the chat closed",
            "return document.querySelector('iframe').hidden && document.activeElement.dataset.loket === 'launcher';",
            json!([]),
        )
        .await;
    for browser in [&widget, &anna, &bob] {
        browser.top().await;
        assert_ne!(browser.run("return document.title;", json!([])).await, json!("owned"), "nothing executed");
    }
    drop((widget, anna, bob));
    server.stop().await;
}

/// A TCP relay to loket on a loopback port of its own that the test can take down and bring back: a dropped
/// connection as a browser meets it (every open connection cut, new ones refused), without stopping loket.
struct Relay {
    addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_up, open) = (up.clone(), connections.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_up.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = server.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open.lock().unwrap().push(relay.abort_handle());
            }
        });
        Relay { addr, up, connections, accepting }
    }

    /// Cuts every connection and refuses new ones.
    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn back(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
        self.accepting.abort();
    }
}

/// Serves `page` as `text/html` to every request on a loopback port of its own: a web page of another origin.
async fn foreign_site(page: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    page.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(page.as_bytes()).await;
            });
        }
    });
    (addr, serving)
}

#[test]
fn chromium_refuses_a_foreign_origin_survives_a_forged_token_and_wrong_keys_and_fits_a_phone() {
    if have_browser() {
        on_a_large_stack(refusals_and_a_phone);
    }
}

async fn refusals_and_a_phone() {
    let texts = ui_texts();
    let (nl, en) = (&texts["nl"], &texts["en"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.web.allowed_origins = vec!["http://shop.test".into()];
    let server = TestServer::start(config).await;
    let widget_key = create_key(&server, "demo", pb::Role::Widget, "", &[]).await;
    let billing_key = create_key(&server, "bea", pb::Role::Agent, "Bea", &["billing"]).await;
    let phone = Browser::start(360, 740).await;
    // The phone reaches loket through a relay that can drop its connections.
    let relay = Relay::to(server.addr).await;

    // A phone's width: the launcher and the chat fit, nothing scrolls sideways, and it answers.
    phone.go(&format!("http://{}/demo#key={widget_key}", relay.addr)).await;
    phone
        .until("the launcher", "return !document.querySelector('button[data-loket=launcher]').hidden;", json!([]))
        .await;
    assert_eq!(phone.run("return innerWidth;", json!([])).await, json!(360));
    phone.click("button[data-loket=launcher]").await;
    let fits = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); \
                return r.left >= 0 && r.right <= innerWidth && document.documentElement.scrollWidth <= innerWidth;";
    assert_eq!(phone.run(fits, json!(["iframe"])).await, json!(true), "the chat fits the page");
    phone.enter_widget().await;
    phone.until("the greeting", COUNT, json!(["#log", "bot"])).await;
    assert_eq!(phone.run(fits, json!(["#send"])).await, json!(true), "the send button is on screen");
    phone.type_text("#text", "hoe lang heb ik bedenktijd\n").await;
    phone.until("an answer", "return document.querySelectorAll('#log li.message.bot').length >= 2;", json!([])).await;
    phone.top().await;
    phone.screenshot("widget-phone.png").await;

    // The connection drops while an agent holds the conversation: the widget says it is reconnecting, a message
    // the customer sends meanwhile stays in the input with the reason, and once the connection is back what the
    // agent wrote meanwhile shows, once each.
    phone.enter_widget().await;
    phone.type_text("#text", "ik wil een medewerker spreken\n").await;
    phone
        .until("the hand-off", "return document.querySelectorAll('#log li.message.bot').length >= 3;", json!([]))
        .await;
    let mut agent = server.agent_as("dirk").await;
    let queued = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs;
    let handoff_id = queued[0].handoff_id.clone();
    agent
        .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), ..Default::default() })
        .await
        .unwrap();
    relay.down();
    let status_starts = "return document.getElementById('status').textContent.startsWith(arguments[0]);";
    phone.until("reconnecting", status_starts, json!([nl["offline"]])).await;
    phone.type_text("#text", "hallo?\n").await;
    let not_sent = nl["widget_not_sent"].split(':').next().unwrap().to_owned();
    phone.until("the message not sent", status_starts, json!([not_sent])).await;
    assert_eq!(phone.run("return document.getElementById('text').value;", json!([])).await, json!("hallo?"));
    for text in ["Ik kijk even mee.", "Een moment nog."] {
        let message =
            pb::SendAgentMessageRequest { handoff_id: handoff_id.clone(), text: text.into(), ..Default::default() };
        agent.send_agent_message(message).await.unwrap();
    }
    relay.back();
    let said = "return [...document.querySelectorAll('#log li.message.' + arguments[0] + ' p')] \
                .map((p) => p.textContent).join('|').endsWith(arguments[1]);";
    let agents = "Ik kijk even mee.|Een moment nog.";
    phone.until("the agent's messages after the drop", said, json!(["agent", agents])).await;
    phone.type_text("#text", "\n").await;
    phone.until("the kept message sent", said, json!(["customer", "hallo?"])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = "return [...document.querySelectorAll('#log li.message.agent p')].map((p) => p.textContent).join('|');";
    assert_eq!(phone.run(all, json!([])).await, json!(agents), "once each");
    phone.top().await;

    // A forged conversation token in the frame's storage: the widget says the old conversation is gone and starts
    // a new one rather than failing.
    phone.enter_widget().await;
    let forge = "const held = JSON.parse(sessionStorage.getItem('loket.conversation')); \
                 sessionStorage.setItem('loket.conversation', JSON.stringify({ id: held.id, token: 'lkc_forged.x' })); \
                 return held.id;";
    let old_id = phone.run(forge, json!([])).await;
    phone.reload().await;
    phone.open_widget().await;
    phone
        .until(
            "the notice",
            "return document.getElementById('status').textContent === arguments[0];",
            json!([nl["widget_expired"]]),
        )
        .await;
    phone.until("a new greeting", "return document.querySelectorAll('#log li.message').length === 1;", json!([])).await;
    let new_id = phone.run("return JSON.parse(sessionStorage.getItem('loket.conversation')).id;", json!([])).await;
    assert_ne!(new_id, old_id);
    drop(phone);

    // A page of an origin loket does not allow: the browser refuses to frame the chat for it, so no launcher
    // appears; and its own script cannot call loket with the widget key either.
    let loket = format!("http://{}", server.addr);
    let page = format!(
        "<!doctype html><html lang=\"en\"><body><h1>Another site</h1>\
         <script src=\"{loket}/widget.js\" data-key=\"{widget_key}\"></script></body></html>"
    );
    let (foreign, serving) = foreign_site(page).await;
    let browser = Browser::start(1000, 760).await;
    browser.go(&format!("http://{foreign}/")).await;
    browser.until("the loader ran", "return !!document.querySelector('button[data-loket=launcher]');", json!([])).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hidden = "return document.querySelector('button[data-loket=launcher]').hidden;";
    assert_eq!(browser.run(hidden, json!([])).await, json!(true), "no chat on a page loket does not allow");
    let call = "const done = arguments[arguments.length - 1]; \
        fetch(arguments[0] + '/loket.v1.ChatService/StartConversation', { method: 'POST', \
          headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', authorization: 'Bearer ' + arguments[1] }, \
          body: new Uint8Array([0, 0, 0, 0, 0]) }) \
        .then((r) => done('answered ' + r.status), (e) => done('refused: ' + e));";
    let outcome = browser.run_async(call, json!([loket, widget_key])).await;
    assert!(outcome.as_str().unwrap().starts_with("refused: TypeError"), "{outcome}");
    serving.abort();

    // The console with keys that are not an agent's, then with an agent key of another skill than the
    // conversation's: a clear message each time, in the console's language.
    let console = browser;
    sign_in(&console, &server, &widget_key).await;
    console
        .until(
            "the refusal",
            "return document.getElementById('notice').textContent === arguments[0];",
            json!([en["console_not_agent"]]),
        )
        .await;
    assert_eq!(console.run("return document.getElementById('desk').hidden;", json!([])).await, json!(true));
    sign_in(&console, &server, "lk_forged_0123").await;
    let unknown = "return document.getElementById('notice').textContent.startsWith(arguments[0]);";
    console.until("the refusal", unknown, json!([en["error_unauthenticated"]])).await;
    let mut chat = server.chat().await;
    let (conversation_id, _, _) = crate::harness::ask_for_a_person(&mut chat, "cust-returns").await;
    let list = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let returns = list.handoffs.into_iter().find(|h| h.conversation_id == conversation_id).expect("its hand-off");
    assert_eq!(returns.skill, "returns");
    let returns = returns.handoff_id;
    sign_in(&console, &server, &billing_key).await;
    signed_in(&console).await;
    assert_eq!(console.run("return document.querySelectorAll('#queue tbody tr').length;", json!([])).await, json!(0));
    console.run("sessionStorage.setItem('loket.open-handoff', arguments[0]); return true;", json!([returns])).await;
    console.reload().await;
    signed_in(&console).await;
    let denied = "const n = document.getElementById('notice').textContent; \
                  return n.startsWith(arguments[0]) && n.includes('billing') === false && n.includes('returns');";
    console.until("the refusal", denied, json!([en["error_permission_denied"]])).await;

    // Another agent takes the returns hand-off and transfers it to billing with a note: it leaves them and comes
    // back queued for billing, with the note.
    console.click("#sign-out").await;
    let erik_key = create_key(&server, "erik", pb::Role::Agent, "Erik", &[]).await;
    sign_in(&console, &server, &erik_key).await;
    signed_in(&console).await;
    let claim = format!("button[data-claim='{returns}']");
    console.until("the hand-off in the queue", "return !!document.querySelector(arguments[0]);", json!([claim])).await;
    console.click(&claim).await;
    console.until("the hand-off open", "return !document.getElementById('handoff').hidden;", json!([])).await;
    console.click("#transfer-details summary").await;
    console.run("document.getElementById('transfer-skill').value = 'billing'; return true;", json!([])).await;
    console.type_text("#transfer-note", "Wil een terugbetaling.").await;
    console.click("#transfer button").await;
    let transferred = en["console_transferred"].replace("{skill}", "billing");
    console
        .until(
            "the transfer told",
            "return document.getElementById('notice').textContent === arguments[0];",
            json!([transferred]),
        )
        .await;
    assert_eq!(console.run("return document.getElementById('handoff').hidden;", json!([])).await, json!(true));
    let moved = stored_handoff(&server, &returns).await;
    assert_eq!((moved.state(), moved.skill.as_str()), (pb::HandoffState::Queued, "billing"));
    assert!(moved.notes.last().unwrap().ends_with("Wil een terugbetaling."), "{:?}", moved.notes);
    drop(console);
    server.stop().await;
}
