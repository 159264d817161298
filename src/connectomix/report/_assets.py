"""The report's stylesheet and script, inlined into the page (nothing loads from the internet).

The script makes tables sortable (click a header) and draws the interactive adjacency
matrix on a canvas (wheel: zoom, drag: pan, hover: pre -> post and synapse count).
"""

CSS = """
:root { --fg:#1d2330; --muted:#5c6577; --line:#dde1e8; --accent:#2f6fdb; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header { background: #1d2330; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: #b9c2d3; font-size: 13px; }
nav { background: #fff; border-bottom: 1px solid var(--line); padding: 8px 28px; position: sticky; top: 0; z-index: 2; }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; font-weight: 500; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 20px; margin: 18px 0; }
h2 { font-size: 18px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 16px 0 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 130px; background: #fff; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; letter-spacing: .02em; }
.notrun { color: #8a5300; background: #fff5e0; border: 1px solid #f1d9a6; border-radius: 6px; padding: 8px 12px; }
.ok { color: #196c2e; } .failed { color: #b3261e; } .running { color: #8a5300; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f4f7; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:after { content: " \\2195"; color: #aab; font-size: 11px; }
table.sortable th.asc:after { content: " \\2191"; color: var(--accent); }
table.sortable th.desc:after { content: " \\2193"; color: var(--accent); }
.scroll { max-height: 420px; max-width: 100%; overflow: auto; display: inline-block; border: 1px solid var(--line); border-radius: 6px; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; max-width: 640px; }
pre { background: #f5f6f8; border: 1px solid var(--line); border-radius: 6px; padding: 10px; max-height: 360px; overflow: auto; font-size: 12px; }
code { background: #f0f2f5; padding: 1px 5px; border-radius: 4px; }
.adj-wrap { position: relative; display: inline-block; }
.adj-tip { position: absolute; pointer-events: none; background: rgba(20,24,34,.9); color: #fff; font-size: 12px;
           padding: 3px 7px; border-radius: 4px; display: none; white-space: nowrap; }
.muted { color: var(--muted); }
"""

JS = r"""
(function () {
  "use strict";
  function cellValue(td) {
    var t = td.getAttribute("data-v");
    if (t === null) t = td.textContent.trim();
    var x = parseFloat(t);
    return (t !== "" && !isNaN(x) && isFinite(t)) ? x : t.toLowerCase();
  }
  function makeSortable(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
          if (typeof x === typeof y) return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
          return (typeof x === "number" ? -1 : 1) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  function viridis(t) {
    var c = [[68,1,84],[59,82,139],[33,145,140],[94,201,98],[253,231,37]];
    t = Math.max(0, Math.min(1, t)) * (c.length - 1);
    var i = Math.min(c.length - 2, Math.floor(t)), f = t - i;
    return "rgb(" + [0,1,2].map(function (k) { return Math.round(c[i][k] + f * (c[i+1][k] - c[i][k])); }).join(",") + ")";
  }
  function adjacency(canvas) {
    var data = JSON.parse(document.getElementById(canvas.getAttribute("data-src")).textContent);
    var n = data.names.length, ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    var tip = canvas.parentNode.querySelector(".adj-tip");
    var view = {x: 0, y: 0, s: W / Math.max(n, 1)};
    var maxw = 1; data.entries.forEach(function (e) { maxw = Math.max(maxw, e[2]); });
    var lookup = {}; data.entries.forEach(function (e) { lookup[e[0] + "," + e[1]] = e[2]; });
    function draw() {
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      ctx.strokeStyle = "#c8ccd4"; ctx.lineWidth = 1;
      data.bounds.forEach(function (b) {
        var p = view.x + b * view.s, q = view.y + b * view.s;
        ctx.beginPath(); ctx.moveTo(p, 0); ctx.lineTo(p, H); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, q); ctx.lineTo(W, q); ctx.stroke();
      });
      var sz = Math.max(view.s, 1.5);
      data.entries.forEach(function (e) {
        ctx.fillStyle = viridis(Math.log(1 + e[2]) / Math.log(1 + maxw));
        ctx.fillRect(view.x + e[1] * view.s, view.y + e[0] * view.s, sz, sz);
      });
      ctx.strokeStyle = "#1d2330"; ctx.strokeRect(view.x, view.y, n * view.s, n * view.s);
    }
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      var k = ev.deltaY < 0 ? 1.25 : 0.8;
      view.x = mx - (mx - view.x) * k; view.y = my - (my - view.y) * k; view.s *= k; draw();
    }, {passive: false});
    var drag = null;
    canvas.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY, view.x, view.y]; });
    window.addEventListener("mouseup", function () { drag = null; });
    canvas.addEventListener("dblclick", function () { view = {x: 0, y: 0, s: W / Math.max(n, 1)}; draw(); });
    canvas.addEventListener("mousemove", function (ev) {
      if (drag) { view.x = drag[2] + ev.clientX - drag[0]; view.y = drag[3] + ev.clientY - drag[1]; draw(); }
      var r = canvas.getBoundingClientRect();
      var j = Math.floor((ev.clientX - r.left - view.x) / view.s), i = Math.floor((ev.clientY - r.top - view.y) / view.s);
      if (i >= 0 && j >= 0 && i < n && j < n) {
        var w = lookup[i + "," + j] || 0;
        tip.textContent = data.names[i] + " \u2192 " + data.names[j] + ": " + w + " synapse" + (w === 1 ? "" : "s") +
          (data.groups ? "  (" + data.what + " " + data.groups[i] + " \u2192 " + data.groups[j] + ")" : "");
        tip.style.left = (ev.clientX - r.left + 12) + "px"; tip.style.top = (ev.clientY - r.top + 12) + "px";
        tip.style.display = "block";
      } else { tip.style.display = "none"; }
    });
    canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    draw();
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("canvas.adjacency"), adjacency);
  });
})();
"""
