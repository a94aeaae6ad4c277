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
