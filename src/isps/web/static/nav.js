// The navigation's groups (<details>): one open at a time, closed by a click elsewhere or Escape.
// Without this script the groups still open and close; it only tidies.
document.addEventListener("click", (event) => {
  for (const group of document.querySelectorAll("details.nav-group[open]")) {
    if (!group.contains(event.target)) group.removeAttribute("open");
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const group of document.querySelectorAll("details.nav-group[open]")) {
    group.removeAttribute("open");
    group.querySelector("summary").focus();
  }
});
