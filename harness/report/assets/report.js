/* oomlab report: hover tips, sortable tables, legend toggles. No network, no library. */
(function () {
  "use strict";
  var tip = document.getElementById("tip");

  function tipTarget(node) {
    return node && node.closest ? node.closest("[data-tip]") : null;
  }

  function place(event) {
    var x = event.clientX + 14;
    var y = event.clientY + 14;
    var box = tip.getBoundingClientRect();
    if (x + box.width > window.innerWidth - 8) x = Math.max(8, event.clientX - box.width - 14);
    if (y + box.height > window.innerHeight - 8) y = Math.max(8, event.clientY - box.height - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  document.addEventListener("mouseover", function (event) {
    var target = tipTarget(event.target);
    if (!target) {
      tip.hidden = true;
      return;
    }
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
    place(event);
  });
  document.addEventListener("mousemove", function (event) {
    if (!tip.hidden) place(event);
  });
  document.addEventListener("mouseout", function (event) {
    var target = tipTarget(event.target);
    if (target && !target.contains(event.relatedTarget)) tip.hidden = true;
  });

  /* a task's row and its spans light up together */
  function mark(event, on) {
    var row = event.target.closest ? event.target.closest("[data-task-id]") : null;
    if (!row) return;
    var id = row.getAttribute("data-task-id");
    document.querySelectorAll('[data-task-id="' + CSS.escape(id) + '"]').forEach(function (el) {
      el.classList.toggle("hl", on);
    });
  }
  document.addEventListener("mouseover", function (event) { mark(event, true); });
  document.addEventListener("mouseout", function (event) { mark(event, false); });

  function sortKey(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var value = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    return value !== "" && isFinite(value) ? parseFloat(value) : value.toLowerCase();
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === "") return 1; /* blanks last either way */
    if (b === "") return -1;
    if (typeof a === typeof b) return a < b ? -1 : 1;
    return typeof a === "number" ? -1 : 1;
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
          other.removeAttribute("aria-sort");
        });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = sortKey(a, index);
          var kb = sortKey(b, index);
          if (ka === "" || kb === "") return compare(ka, kb);
          return ascending ? compare(ka, kb) : compare(kb, ka);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });

  document.querySelectorAll(".legend-item").forEach(function (item) {
    item.setAttribute("aria-pressed", "true");
    item.addEventListener("click", function () {
      var off = item.classList.toggle("off");
      item.setAttribute("aria-pressed", String(!off));
      var scope = item.closest("figure") || document;
      var selector = '[data-series="' + CSS.escape(item.getAttribute("data-series")) + '"]';
      scope.querySelectorAll(selector).forEach(function (el) {
        if (el !== item) el.style.display = off ? "none" : "";
      });
    });
  });
})();
