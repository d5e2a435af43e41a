// The script a shop puts on its pages: `<script src="https://loket.example/widget.js" data-key="lk_..." async>`.
// It adds only a launcher button and an iframe served from loket's origin, so the host page's scripts never see
// the conversation or its token (those live inside the frame). It has no texts of its own: the frame tells it
// the launcher's words in the visitor's language once it has loaded, and only then is the launcher shown. A page
// whose origin loket does not allow never gets that far: the browser refuses to frame the chat for it
// (Content-Security-Policy frame-ancestors), so no launcher appears.
export {}; // a module to the type checker; esbuild makes it a classic script

const script = document.currentScript as HTMLScriptElement | null;
if (script !== null) {
  const loket = new URL(script.src).origin;
  const key = script.dataset.key ?? "";
  // The frame picks the first of these it serves.
  const lang = script.dataset.language || document.documentElement.lang || navigator.language;

  const frame = document.createElement("iframe");
  frame.id = "loket-chat";
  frame.src = `${loket}/widget#${new URLSearchParams({ key, lang })}`;
  frame.hidden = true;
  Object.assign(frame.style, {
    position: "fixed", right: "16px", bottom: "84px", width: "min(380px, calc(100vw - 32px))",
    height: "min(560px, calc(100vh - 110px))", border: "1px solid #ccd", borderRadius: "12px",
    boxShadow: "0 4px 24px rgba(0,0,0,.18)", background: "#fff", zIndex: "2147483646",
  });

  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.hidden = true;
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", frame.id);
  launcher.dataset.loket = "launcher";
  Object.assign(launcher.style, {
    position: "fixed", right: "16px", bottom: "16px", padding: "14px 20px", border: "0", borderRadius: "24px",
    background: "var(--loket-accent, #0b5cad)", color: "#fff", font: "600 16px system-ui, sans-serif",
    cursor: "pointer", zIndex: "2147483647",
  });
  const labels = { launcher: "", close: "" };
  const show = (open: boolean): void => {
    frame.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.textContent = open ? labels.close : labels.launcher;
    if (open) {
      frame.focus();
      frame.contentWindow?.postMessage({ loket: "open" }, loket);
    } else {
      launcher.focus();
    }
  };
  launcher.addEventListener("click", () => show(!!frame.hidden));
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow || event.origin !== loket) return;
    const data = event.data as { loket?: string; title?: string; launcher?: string; close?: string } | null;
    if (data?.loket === "ready") {
      labels.launcher = data.launcher ?? "";
      labels.close = data.close ?? "";
      frame.title = data.title ?? "";
      launcher.textContent = frame.hidden ? labels.launcher : labels.close;
      launcher.hidden = false;
    } else if (data?.loket === "close" && !frame.hidden) {
      show(false);
    }
  });
  document.body.append(frame, launcher);
}
