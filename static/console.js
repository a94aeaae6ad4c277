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
