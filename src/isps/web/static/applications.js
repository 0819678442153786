// The registration form's member rows are numbered in their order on the page (the numbers the
// form's error messages use, "member 2: ..."): renumbered whenever a row is added or removed.
(function () {
  function renumber(list) {
    list.querySelectorAll("fieldset.member .member-no").forEach(function (span, i) {
      span.textContent = String(i + 1);
    });
  }
  function watch() {
    var list = document.getElementById("members");
    if (!list) return;
    renumber(list);
    new MutationObserver(function () { renumber(list); }).observe(list, { childList: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
