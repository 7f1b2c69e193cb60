// Copy buttons: <button data-copy="#id" hidden> copies the text of #id. The buttons stay hidden
// without JavaScript, where selecting the text by hand is the way.
(function () {
  "use strict";

  function fallbackCopy(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(node) {
    var text = node.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(node); });
    }
    return fallbackCopy(node);
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(target).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Select and copy"; }
      ).then(function () {
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });
})();
