// Progressive enhancement: every page works without this; it adds live updates, the
// live log stream, collapsible groups and the log search.
(function () {
  "use strict";
  // Lists and run pages: refresh the table's body while the page is open.
  for (const table of document.querySelectorAll("table[data-live]")) {
    const url = table.dataset.live;
    if (!url) continue;
    setInterval(async () => {
      const answer = await fetch(url, { credentials: "same-origin" });
      if (answer.ok) table.tBodies[0].innerHTML = await answer.text();
    }, 1000);
  }
  const log = document.getElementById("log");
  if (!log) return;
  // Follow the log at the bottom unless the reader scrolled up.
  let follow = true;
  log.addEventListener("scroll", () => {
    follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  });
  const append = (html) => {
    log.insertAdjacentHTML("beforeend", html);
    if (follow) log.scrollTop = log.scrollHeight;
  };
  if (log.dataset.live && log.dataset.finished !== "true") {
    const events = new EventSource(log.dataset.live);
    events.onmessage = (e) => append(e.data);
    events.addEventListener("end", () => events.close());
  }
  // Groups: a click on a header hides or shows its lines.
  log.addEventListener("click", (e) => {
    const header = e.target.closest(".grp");
    if (!header || e.target.tagName === "A") return;
    header.classList.toggle("closed");
    const hide = header.classList.contains("closed");
    for (const line of log.querySelectorAll(`[data-in="${header.dataset.g}"]`)) {
      line.classList.toggle("hidden", hide);
    }
  });
  const search = document.getElementById("log-search");
  if (search) {
    search.addEventListener("input", () => {
      const needle = search.value.toLowerCase();
      for (const line of log.children) {
        line.classList.toggle("nomatch", needle !== "" && !line.textContent.toLowerCase().includes(needle));
      }
    });
  }
})();
