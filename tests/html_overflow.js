// What a reader of a symcost page would miss, measured by tests/test_render_outputs.py in headless
// Chromium.  The harness page holds each page twice, in frames: once as wide as a browser window
// (data-mode="screen") and once as wide as the text of a printed page with the page's @media print
// rules in force (data-mode="print").  When everything has loaded, every frame is measured for
//   - a page wider than its window (a horizontal scroll bar; on paper: cut off at the margin),
//   - an element that runs out of the box that holds it (a formula out of its grey box, a table
//     out of the text column),
//   - content hidden behind a scroll bar (overflow: auto or hidden; on paper it is cut off),
//   - an order Θ(…) or O(…) broken over two lines,
// and the findings go, as JSON {page: {mode: [finding, ...]}}, into a <pre> with the id
// symcost-overflow, which the test reads from --dump-dom.
(function () {
  "use strict";

  function name(el) {
    var cls = typeof el.className === "string" && el.className.trim()
      ? "." + el.className.trim().split(/\s+/).join(".") : "";
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + cls;
  }

  function describe(el) {
    return name(el) + " \u00ab" + (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 60) + "\u00bb";
  }

  function printMedia(doc) {
    for (var s = 0; s < doc.styleSheets.length; s++) {
      var rules = doc.styleSheets[s].cssRules;
      for (var r = 0; r < rules.length; r++) {
        if (!rules[r].media) continue;
        var media = rules[r].media.mediaText;
        if (/\bprint\b/.test(media)) rules[r].media.mediaText = media.replace(/\bprint\b/g, "all");
        else if (/\bscreen\b/.test(media)) rules[r].media.mediaText = "not all";
      }
    }
    doc.documentElement.style.scrollbarWidth = "none";  // paper has no scroll bars
  }

  function measure(doc) {
    var win = doc.defaultView, out = [], root = doc.documentElement;
    if (root.scrollWidth > root.clientWidth + 1)
      out.push("the page is " + root.scrollWidth + "px wide in a " + root.clientWidth + "px window");
    var all = doc.body.querySelectorAll("*");
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (el.tagName.toLowerCase() !== "math" && el.closest("math")) continue;  // a <math> is one unit
      if (win.getComputedStyle(el).overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1)
        out.push(describe(el) + " hides " + (el.scrollWidth - el.clientWidth) + "px behind a scroll bar");
      var box = el.getBoundingClientRect();
      for (var j = 0; j < el.children.length; j++) {
        var r = el.children[j].getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        var out_by = Math.max(r.right - box.right, box.left - r.left);
        if (out_by > 1)
          out.push(describe(el.children[j]) + " runs " + Math.round(out_by) + "px out of " + describe(el));
      }
    }
    var cells = doc.querySelectorAll("td, th, .summary span");
    for (var k = 0; k < cells.length; k++) {
      var text = cells[k].textContent.replace(/\s+/g, "");
      if (!/^[\u0398O]\(/.test(text)) continue;
      var range = doc.createRange();
      range.selectNodeContents(cells[k]);
      var rects = Array.prototype.filter.call(range.getClientRects(), function (q) { return q.width > 0; });
      var first = Math.min.apply(null, rects.map(function (q) { return q.bottom; }));
      if (rects.some(function (q) { return q.top >= first - 1; }))  // a piece entirely below another
        out.push(describe(cells[k]) + " is broken over two lines");
    }
    return out;
  }

  window.addEventListener("load", function () {
    var result = {};
    var frames = document.querySelectorAll("iframe[data-page]");
    for (var f = 0; f < frames.length; f++) {
      var frame = frames[f], doc = frame.contentDocument, page = frame.dataset.page;
      if (frame.dataset.mode === "print") printMedia(doc);
      result[page] = result[page] || {};
      result[page][frame.dataset.mode] = measure(doc);
    }
    var pre = document.createElement("pre");
    pre.id = "symcost-overflow";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  });
})();
