// The recovery codes page (templates/mfa.html): copy, print or download the codes shown. Nothing
// is sent anywhere: the codes are read from the page, and the download is made in the browser.
"use strict";
(function () {
  var box = document.getElementById("recovery");
  if (!box) { return; }
  var account = box.dataset.account || "";
  var codes = Array.prototype.map.call(box.querySelectorAll(".codes code"), function (c) { return c.textContent; });
  var made = new Date().toISOString().slice(0, 10);
  document.getElementById("made").textContent = made;
  var text = "Orthanc Gate recovery codes" + (account ? " for " + account : "") + ", made " + made + ".\n" +
    "Each one signs in once, in place of the code from the authenticator app.\n\n" + codes.join("\n") + "\n";
  var said = document.getElementById("copied");

  function fallbackCopy() {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    said.textContent = ok ? "Copied." : "Select the codes and copy them.";
  }

  document.getElementById("copy-codes").addEventListener("click", function () {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { said.textContent = "Copied."; }, fallbackCopy);
    } else {
      fallbackCopy();
    }
  });
  document.getElementById("print-codes").addEventListener("click", function () { window.print(); });
  document.getElementById("download-codes").addEventListener("click", function () {
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = "orthanc-gate-recovery-codes" + (account ? "-" + account : "") + ".txt";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
})();
