/* qsaudit report tables: sorting (numeric-aware), filtering, paging and the per-case view.
   Data comes from <script type="application/json"> blocks as {columns: [...], rows: [[...]]}.
   Plain ES2017, no libraries, no network. */
(function () {
  "use strict";

  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var thresholds = JSON.parse(document.getElementById("thresholds").textContent);

  function readData(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function dscClass(v) {
    if (v === null || v === undefined) return "";
    if (v < thresholds[0]) return "dsc-bad";
    if (v < thresholds[1]) return "dsc-doubt";
    return "dsc-good";
  }

  // spec: {type: "float" | "int" | "str", digits: decimals shown for floats}
  function formatValue(v, spec) {
    if (v === null || v === undefined) return "";
    if (spec.type === "float" && typeof v === "number") return v.toFixed(spec.digits);
    return String(v);
  }

  function columnSpecs(table) {
    var specs = {};
    Array.prototype.forEach.call(table.querySelectorAll("thead th[data-col]"), function (th) {
      specs[th.dataset.col] = { type: th.dataset.type, digits: parseInt(th.dataset.digits, 10) || 0 };
    });
    return specs;
  }

  var TEXT = { type: "str", digits: 0 };

  // Missing values sort last in both directions; numbers numerically; text naturally ("c2" < "c10").
  function compareValues(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return collator.compare(String(a), String(b));
  }

  function SortableTable(table, data, options) {
    var self = this;
    this.table = table;
    this.data = data;
    this.options = options;
    this.index = {};
    data.columns.forEach(function (c, i) { self.index[c] = i; });
    this.sortCol = options.sortCol || null;
    this.sortDir = options.sortDir || 1;
    this.filter = function () { return true; };
    this.shown = options.pageSize;
    this.view = [];
    this.headers = Array.prototype.slice.call(table.querySelectorAll("thead th[data-col]"));
    this.headers.forEach(function (th) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { self.sortBy(th.dataset.col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); self.sortBy(th.dataset.col); }
      });
    });
    if (options.more) {
      options.more.addEventListener("click", function () {
        self.shown += options.pageSize;
        self.render();
      });
    }
  }

  SortableTable.prototype.sortBy = function (col) {
    if (this.sortCol === col) {
      this.sortDir = -this.sortDir;
    } else {
      this.sortCol = col;
      this.sortDir = 1;
    }
    this.shown = this.options.pageSize;
    this.refresh();
  };

  SortableTable.prototype.setFilter = function (fn) {
    this.filter = fn;
    this.shown = this.options.pageSize;
    this.refresh();
  };

  SortableTable.prototype.refresh = function () {
    var filter = this.filter;
    this.view = this.data.rows.filter(function (r) { return filter(r); });
    if (this.sortCol !== null && this.index[this.sortCol] !== undefined) {
      var i = this.index[this.sortCol];
      var dir = this.sortDir;
      this.view.sort(function (ra, rb) {
        var a = ra[i], b = rb[i];
        var aMissing = a === null || a === "", bMissing = b === null || b === "";
        if (aMissing || bMissing) return aMissing === bMissing ? 0 : (aMissing ? 1 : -1);
        return dir * compareValues(a, b);
      });
    }
    var col = this.sortCol, dir2 = this.sortDir;
    this.headers.forEach(function (th) {
      if (th.dataset.col === col) th.setAttribute("aria-sort", dir2 > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    this.render();
  };

  SortableTable.prototype.render = function () {
    var body = this.table.tBodies[0];
    var frag = document.createDocumentFragment();
    var n = Math.min(this.shown, this.view.length);
    for (var k = 0; k < n; k++) frag.appendChild(this.options.renderRow(this.view[k], this.index));
    while (body.firstChild) body.removeChild(body.firstChild);
    body.appendChild(frag);
    if (this.options.more) this.options.more.hidden = n >= this.view.length;
    if (this.options.onRender) this.options.onRender(n, this.view.length, this.data.rows.length);
  };

  function cell(tr, value, spec, extraClass) {
    var td = document.createElement("td");
    td.textContent = formatValue(value, spec);
    if (spec.type !== "str") td.className = "num";
    if (extraClass) td.className = (td.className + " " + extraClass).trim();
    tr.appendChild(td);
    return td;
  }

  function caseButton(caseId) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "case-link";
    b.textContent = caseId;
    b.title = "Show this case's labels";
    b.addEventListener("click", function () { showCase(caseId); });
    return b;
  }

  // ---- the label table ------------------------------------------------------------------------
  var labelTable = document.getElementById("label-table");
  var labelData = readData("label-data");
  var labelTypes = columnSpecs(labelTable);
  var labelCount = document.getElementById("label-count");
  var labelEmpty = document.getElementById("label-empty");

  var labels = new SortableTable(labelTable, labelData, {
    pageSize: 200,
    sortCol: "predicted_dsc",
    sortDir: 1,
    more: document.getElementById("label-more"),
    renderRow: function (row, idx) {
      var tr = document.createElement("tr");
      var status = row[idx.status];
      if (status !== null && status !== "ok") tr.className = "problem";
      Object.keys(labelTypes).forEach(function (col) {
        var v = row[idx[col]];
        if (col === "case_id") {
          var td = document.createElement("td");
          td.appendChild(caseButton(v));
          tr.appendChild(td);
        } else if (col === "predicted_dsc") {
          cell(tr, v, labelTypes[col], dscClass(v));
        } else if (col === "n_flags") {
          var flags = row[idx.flags];
          var c = cell(tr, v, labelTypes[col]);
          if (flags) { c.textContent = v + " (" + flags + ")"; c.title = flags; }
        } else if (col === "status") {
          cell(tr, v, TEXT, status !== "ok" ? "bad-text" : "");
        } else if (col === "error") {
          cell(tr, v, TEXT, v ? "err" : "");
        } else {
          cell(tr, v, labelTypes[col]);
        }
      });
      return tr;
    },
    onRender: function (shown, matching, total) {
      labelCount.textContent = "showing " + shown + " of " + matching + " matching labels (" +
        total + " in all)";
      labelEmpty.hidden = matching > 0;
    }
  });

  var query = document.getElementById("q");
  var structure = document.getElementById("structure");
  var flaggedOnly = document.getElementById("flagged");
  var problemsOnly = document.getElementById("problems-only");
  var caseChip = document.getElementById("case-filter");
  var caseName = document.getElementById("case-name");
  var currentCase = null;
  var textCols = ["case_id", "label", "structure", "status", "error", "flags"];

  function applyLabelFilters() {
    var idx = labels.index;
    var q = query.value.trim().toLowerCase();
    var s = structure.value;
    var onlyFlagged = flaggedOnly.checked, onlyProblems = problemsOnly.checked;
    var theCase = currentCase;
    labels.setFilter(function (row) {
      if (theCase !== null && row[idx.case_id] !== theCase) return false;
      if (s && (row[idx.structure] === null ? row[idx.label] : row[idx.structure]) !== s) return false;
      if (onlyFlagged && !(row[idx.n_flags] > 0)) return false;
      if (onlyProblems && row[idx.status] === "ok") return false;
      if (q) {
        for (var k = 0; k < textCols.length; k++) {
          var v = row[idx[textCols[k]]];
          if (v !== null && String(v).toLowerCase().indexOf(q) !== -1) return true;
        }
        return false;
      }
      return true;
    });
    caseChip.hidden = theCase === null;
    caseName.textContent = theCase === null ? "" : theCase;
  }

  function showCase(caseId) {
    currentCase = caseId;
    applyLabelFilters();
    var target = "#case=" + encodeURIComponent(caseId);
    if (location.hash !== target) history.replaceState(null, "", target);
    document.getElementById("labels").scrollIntoView();
  }

  function caseFromHash() {
    var m = /^#case=(.*)$/.exec(location.hash);
    if (!m) return;
    try { showCase(decodeURIComponent(m[1])); } catch (e) { /* malformed hash: ignore it */ }
  }

  // Typing filters after a short pause: a big scan has 100k rows to scan per keystroke.
  var typingTimer = null;
  query.addEventListener("input", function () {
    if (typingTimer !== null) clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingTimer = null; applyLabelFilters(); }, 150);
  });
  structure.addEventListener("change", applyLabelFilters);
  flaggedOnly.addEventListener("change", applyLabelFilters);
  problemsOnly.addEventListener("change", applyLabelFilters);
  document.getElementById("case-clear").addEventListener("click", function () {
    currentCase = null;
    history.replaceState(null, "", "#labels");
    applyLabelFilters();
  });
  window.addEventListener("hashchange", caseFromHash);

  // ---- the case table -------------------------------------------------------------------------
  var caseTable = document.getElementById("case-table");
  var caseTypes = columnSpecs(caseTable);
  var cases = new SortableTable(caseTable, readData("case-data"), {
    pageSize: 100,
    sortCol: "worst_dsc",
    sortDir: 1,
    more: document.getElementById("case-more"),
    renderRow: function (row, idx) {
      var tr = document.createElement("tr");
      Object.keys(caseTypes).forEach(function (col) {
        var v = row[idx[col]];
        if (col === "case_id") {
          var td = document.createElement("td");
          td.appendChild(caseButton(v));
          tr.appendChild(td);
        } else if (col === "worst_dsc" || col === "mean_dsc") {
          cell(tr, v, caseTypes[col], dscClass(v));
        } else {
          cell(tr, v, caseTypes[col], col === "problems" && v > 0 ? "bad-text" : "");
        }
      });
      return tr;
    }
  });

  // ---- a larger view of a card's image, on click --------------------------------------------
  var viewer = document.getElementById("viewer");
  if (viewer && typeof viewer.showModal === "function") {
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button.view") : null;
      if (!button) return;
      var img = button.querySelector("img");
      document.getElementById("viewer-img").src = img.src;
      document.getElementById("viewer-img").alt = img.alt;
      document.getElementById("viewer-caption").textContent = img.dataset.caption || img.alt;
      viewer.showModal();
    });
    viewer.addEventListener("click", function (event) {
      if (event.target === viewer || event.target.id === "viewer-img") viewer.close();
    });
  }

  labels.refresh();
  cases.refresh();
  caseFromHash();
})();
