// Progressive enhancement only: every page works without JavaScript.
// Shows just the chosen exploration algorithm's settings in the experiment form.
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  var select = document.querySelector("[data-algorithm-select]");
  if (!select) return;
  function show() {
    document.querySelectorAll(".algorithm-settings").forEach(function (group) {
      group.hidden = group.getAttribute("data-algorithm") !== select.value;
    });
  }
  select.addEventListener("change", show);
  show();
});
