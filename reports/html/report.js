// Profile tabs and the filters. Reads only the page's own attributes: no data, no fetch.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  var sections = Array.prototype.slice.call(document.querySelectorAll("section.profile"));
  var tabs = Array.prototype.slice.call(document.querySelectorAll(".tabs a.tab"));
  var form = document.getElementById("filters");
  var filtered = Array.prototype.slice.call(document.querySelectorAll("[data-outcome]"));

  function showProfile(id) {
    sections.forEach(function (section) {
      section.classList.toggle("active", section.id === id);
    });
    tabs.forEach(function (tab) {
      tab.setAttribute("aria-current", String(tab.getAttribute("href") === "#" + id));
    });
  }

  function target() {
    var id = decodeURIComponent(location.hash.slice(1));
    return id ? document.getElementById(id) : null;
  }

  // A profile named in the URL opens its tab; a link to a check or requirement that the
  // filters hide shows that one again.
  function follow() {
    var element = target();
    var profile = element && element.closest("section.profile");
    if (profile) {
      showProfile(profile.id);
    } else if (!sections.some(function (s) { return s.classList.contains("active"); })) {
      showProfile(sections.length ? sections[0].id : "");
    }
    if (element && element.hidden && element.hasAttribute("data-outcome")) {
      element.hidden = false;
      element.scrollIntoView();
    }
  }

  function matches(element, outcome, component, level) {
    var value = element.getAttribute("data-outcome");
    if (outcome === "not-passed" ? value === "passed" : outcome && value !== outcome) {
      return false;
    }
    if (level && element.getAttribute("data-level") !== level) {
      return false;
    }
    return !component || element.getAttribute("data-components").indexOf("|" + component + "|") >= 0;
  }

  function applyFilters() {
    var outcome = form.elements.namedItem("outcome").value;
    var component = form.elements.namedItem("component").value;
    var level = form.elements.namedItem("level").value;
    var shown = 0;
    filtered.forEach(function (element) {
      element.hidden = !matches(element, outcome, component, level);
      if (!element.hidden) {
        shown += 1;
      }
    });
    var active = outcome || component || level;
    form.elements.namedItem("shown").value = active
      ? shown + " of " + filtered.length + " requirement rows and checks shown"
      : "";
  }

  if (form) {
    form.hidden = false;
    form.addEventListener("change", applyFilters);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    applyFilters(); // a reload may restore the selections
  }
  window.addEventListener("hashchange", follow);
  follow();
})();
