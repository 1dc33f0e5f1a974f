/* Segment Builder: drag a field, event or audience from the Fields pane onto a container.
   Every "+" button does the same from the keyboard; this only adds the mouse gesture. */
(function () {
  "use strict";

  /* The drop goes through the same hidden htmx button as every "+" button's request. */
  function syncAction(action) {
    var button = document.getElementById("drop-action");
    button.value = action;
    button.click();
  }

  document.addEventListener("dragstart", function (event) {
    var leaf = event.target.closest && event.target.closest(".field-leaf");
    if (!leaf) return;
    event.dataTransfer.setData("text/plain", leaf.dataset.action + "|" + leaf.dataset.arg);
    event.dataTransfer.effectAllowed = "copy";
  });

  document.addEventListener("dragover", function (event) {
    var box = event.target.closest && event.target.closest(".rule-container");
    if (!box) return;
    event.preventDefault();
    box.classList.add("drop-target");
  });

  document.addEventListener("dragleave", function (event) {
    var box = event.target.closest && event.target.closest(".rule-container");
    if (box) box.classList.remove("drop-target");
  });

  document.addEventListener("drop", function (event) {
    var box = event.target.closest && event.target.closest(".rule-container");
    if (!box) return;
    event.preventDefault();
    box.classList.remove("drop-target");
    var parts = event.dataTransfer.getData("text/plain").split("|");
    if (parts.length < 2) return;
    syncAction(parts[0] + ":" + box.dataset.ci + ":" + parts.slice(1).join("|"));
  });

  /* Narrow the Fields pane to names containing the typed text. */
  window.siftFilterFields = function (text) {
    var needle = text.trim().toLowerCase();
    document.querySelectorAll(".fields-pane .field-leaf").forEach(function (leaf) {
      var hay = (leaf.dataset.path || leaf.dataset.arg || leaf.textContent).toLowerCase();
      leaf.hidden = needle !== "" && hay.indexOf(needle) === -1;
      if (needle && !leaf.hidden) {
        var parent = leaf.parentElement.closest("details");
        while (parent) { parent.open = true; parent = parent.parentElement.closest("details"); }
      }
    });
  };
})();
