// A "Copy" button beside a secret shown once: copies the box's whole text (the box itself can be
// selected and copied by hand where the clipboard is not allowed).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var box = document.getElementById(button.getAttribute("data-copy"));
  if (!box) return;
  var text = box.value !== undefined ? box.value : box.textContent;
  box.select && box.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(function () { button.textContent = button.getAttribute("data-done"); });
  }
});
