// remedy's operator page: ask before every action, and refresh while nobody is
// reading a remediation or typing. Every form works without this script.
"use strict";

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}

// What a button did is said once: a reload shows the page, not the notice again.
const here = new URL(window.location.href);
if (here.searchParams.has("notice")) {
  here.searchParams.delete("notice");
  here.searchParams.delete("id");
  window.history.replaceState(null, "", here.pathname + here.search + here.hash);
}

const toggle = document.getElementById("auto-refresh");
if (toggle) {
  toggle.checked = sessionStorage.getItem("remedy-refresh") !== "off";
  toggle.addEventListener("change", () => {
    sessionStorage.setItem("remedy-refresh", toggle.checked ? "on" : "off");
  });
  window.setInterval(() => {
    const typing = document.activeElement && document.activeElement.matches("input, select");
    const reading = document.querySelector("details[open]");
    if (toggle.checked && !typing && !reading && !document.hidden) {
      window.location.reload(); // the browser keeps the scroll position
    }
  }, 15000);
}
