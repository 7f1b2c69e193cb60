// Admin crop review: drag a square on the source photo to fill in the manual crop (left, top, side
// in source pixels); the numbers stay editable and nothing is saved until the form is submitted.
(function () {
  "use strict";
  var stage = document.querySelector(".crop-stage");
  var form = document.getElementById("manual-crop");
  if (!stage || !form) return;
  var img = stage.querySelector("img");
  var box = stage.querySelector(".crop-drag");
  var sourceWidth = Number(stage.dataset.sourceWidth);
  var start = null;

  function point(event) {
    var rect = img.getBoundingClientRect();
    return {
      x: Math.min(Math.max(event.clientX - rect.left, 0), rect.width),
      y: Math.min(Math.max(event.clientY - rect.top, 0), rect.height),
    };
  }

  function square(end) {
    var rect = img.getBoundingClientRect();
    var side = Math.max(Math.abs(end.x - start.x), Math.abs(end.y - start.y));
    var left = end.x < start.x ? start.x - side : start.x;
    var top = end.y < start.y ? start.y - side : start.y;
    side = Math.min(side, rect.width - Math.max(left, 0), rect.height - Math.max(top, 0));
    return { left: Math.max(left, 0), top: Math.max(top, 0), side: Math.max(side, 0) };
  }

  stage.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    start = point(event);
    stage.setPointerCapture(event.pointerId);
    box.style.display = "none";
  });
  stage.addEventListener("pointermove", function (event) {
    if (!start) return;
    var sq = square(point(event));
    box.style.left = sq.left + "px";
    box.style.top = sq.top + "px";
    box.style.width = box.style.height = sq.side + "px";
    box.style.display = "block";
  });
  stage.addEventListener("pointerup", function (event) {
    if (!start) return;
    var sq = square(point(event));
    start = null;
    var scale = sourceWidth / img.getBoundingClientRect().width;
    if (sq.side * scale < 16) return;
    form.elements.left.value = Math.round(sq.left * scale);
    form.elements.top.value = Math.round(sq.top * scale);
    form.elements.side.value = Math.round(sq.side * scale);
  });
})();
