document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains("sorted-asc");
      t.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      function key(r) { var c = r.cells[i]; var v = c.getAttribute("data-v");
        return v !== null && v !== "" ? parseFloat(v) : c.textContent; }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") {
          if (isNaN(x)) return 1; if (isNaN(y)) return -1; return asc ? x - y : y - x; }
        return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
