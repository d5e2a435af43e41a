// Small DOM helpers for the pages. Text always goes in through textContent: nothing anybody typed (a customer,
// an agent, an editor's FAQ) is ever parsed as markup.

/// The element with `id`, which the page's HTML must have.
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} missing`);
  return found as T;
}

/// A new `tag` element with an optional class and text.
export function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  if (className !== "") made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

/// A button (never a form submit) labelled `label` that calls `onClick`.
export function button(label: string, onClick: () => void, className = ""): HTMLButtonElement {
  const made = make("button", className, label);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

/// Enter in `input` submits `form`; Shift+Enter starts a new line (and an input method's Enter stays its own).
export function sendOnEnter(input: HTMLTextAreaElement, form: HTMLFormElement): void {
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/// The UTF-8 length of `text`: loket limits messages in bytes.
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
