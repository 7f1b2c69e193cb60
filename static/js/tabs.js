// The workspace tabs scroll sideways on phones: bring the current page's tab into view.
(function () {
  "use strict";
  var current = document.querySelector(".tabs [aria-current='page']");
  if (!current) return;
  var tabs = current.parentElement;
  if (tabs.scrollWidth <= tabs.clientWidth) return;
  tabs.scrollLeft = current.offsetLeft - (tabs.clientWidth - current.offsetWidth) / 2 - tabs.offsetLeft;
})();
