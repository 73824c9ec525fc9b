// The admin console's little script: a CSV file chosen is loaded into the text box (nothing is
// sent until the form is), and "select all" boxes tick the rows of their table.
"use strict";
(function () {
  var file = document.getElementById("csv-file");
  var text = document.getElementById("csv-text");
  if (file && text) {
    file.addEventListener("change", function () {
      if (!file.files.length) { return; }
      file.files[0].text().then(function (content) { text.value = content; });
    });
  }
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name^='" + box.dataset.selectAll + "']").forEach(function (other) {
        other.checked = box.checked;
      });
    });
  });
  document.querySelectorAll("button[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
