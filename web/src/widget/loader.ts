// The script a shop puts on its pages: `<script src="https://loket.example/widget.js" data-key="lk_..." async>`.
// It adds only a launcher button and an iframe served from loket's origin, so the host page's scripts never see
// the conversation or its token (those live inside the frame).
import { pickLanguage, texts } from "./texts.js";

const script = document.currentScript as HTMLScriptElement | null;
if (script !== null) {
  const loket = new URL(script.src).origin;
  const key = script.dataset.key ?? "";
  const language = pickLanguage(script.dataset.language, document.documentElement.lang, navigator.language);
  const t = texts(language);

  const frame = document.createElement("iframe");
  frame.title = t.title;
  frame.src = `${loket}/widget#${new URLSearchParams({ key, lang: language })}`;
  frame.hidden = true;
  Object.assign(frame.style, {
    position: "fixed", right: "16px", bottom: "84px", width: "min(380px, calc(100vw - 32px))",
    height: "min(560px, calc(100vh - 110px))", border: "1px solid #ccd", borderRadius: "12px",
    boxShadow: "0 4px 24px rgba(0,0,0,.18)", background: "#fff", zIndex: "2147483646",
  });

  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.textContent = t.launcher;
  launcher.setAttribute("aria-expanded", "false");
  launcher.dataset.loket = "launcher";
  Object.assign(launcher.style, {
    position: "fixed", right: "16px", bottom: "16px", padding: "14px 20px", border: "0", borderRadius: "24px",
    background: "var(--loket-accent, #0b5cad)", color: "#fff", font: "600 16px system-ui, sans-serif",
    cursor: "pointer", zIndex: "2147483647",
  });
  launcher.addEventListener("click", () => {
    frame.hidden = !frame.hidden;
    launcher.setAttribute("aria-expanded", String(!frame.hidden));
    launcher.textContent = frame.hidden ? t.launcher : t.close;
    if (!frame.hidden) frame.focus();
  });
  document.body.append(frame, launcher);
}
