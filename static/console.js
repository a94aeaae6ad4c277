// Ask before a destructive action: a form with data-confirm posts only when the operator agrees.
// Listening on the document keeps working for forms that htmx swaps in later.
document.addEventListener("submit", function (event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // One click, one request: a second click while the first is in flight would only be refused.
  form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
});

// A success message ("Provisioning of acme started again.") is true when it is shown; once the
// live part of the page shows the tenant in another state, it is only history: drop it.
document.addEventListener("DOMContentLoaded", function () {
  const live = document.getElementById("live");
  const messages = document.querySelector(".messages");
  if (live && messages) messages.dataset.state = live.dataset.state || "";
});
document.addEventListener("htmx:afterSwap", function () {
  const live = document.getElementById("live");
  const messages = document.querySelector(".messages");
  if (!live || !messages || live.dataset.state === messages.dataset.state) return;
  messages.querySelectorAll(".message.success").forEach(function (m) { m.remove(); });
  if (!messages.querySelector(".message")) messages.remove();
});

// Times in the operator's own offset: the server writes UTC; the browser knows its offset. It
// fills every tz_offset field (a scheduled operation's local time is read at it) and writes
// each [data-utc] moment in local time beside its UTC text.
function localTimes() {
  const offset = -new Date().getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const pad = function (n) { return String(n).padStart(2, "0"); };
  const zone = "UTC" + sign + pad(Math.floor(Math.abs(offset) / 60)) + ":" + pad(Math.abs(offset) % 60);
  document.querySelectorAll("input[name=tz_offset]").forEach(function (i) { i.value = String(offset); });
  document.querySelectorAll(".tz-note").forEach(function (n) { n.textContent = " (" + zone + ")"; });
  document.querySelectorAll("[data-utc]").forEach(function (el) {
    const d = new Date(el.dataset.utc);
    if (isNaN(d)) return;
    el.textContent = "your time " + d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + " (" + zone + ")";
  });
}
document.addEventListener("DOMContentLoaded", localTimes);
document.addEventListener("htmx:afterSwap", localTimes);
