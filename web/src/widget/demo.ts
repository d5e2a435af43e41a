// /demo: a shop page of loket's own, for trying the widget. The widget key comes after `#key=` in the address
// (loket prints the address on its first start); a real shop writes it into its <script> tag instead.
export {}; // a module to the type checker

const key = new URLSearchParams(location.hash.slice(1)).get("key") ?? "";
const script = document.createElement("script");
script.src = "/widget.js";
script.dataset.key = key;
document.body.append(script);
const hint = document.getElementById("no-key");
if (hint !== null) hint.hidden = key !== "";
