// The checkout success page while Stripe has not told us the outcome: look again every few
// seconds in the background and reload only once the outcome is known, so the page does not
// change under a reader while it waits. Without script, the page's noscript refresh does this.
(function () {
  "use strict";
  const current = document.getElementById("outcome");
  if (!current || current.dataset.outcome !== "unknown") return;
  const look = function () {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("outcome");
        if (next && next.dataset.outcome !== "unknown") {
          window.location.reload();
        } else {
          window.setTimeout(look, 3000);
        }
      })
      .catch(function () { window.setTimeout(look, 10000); });
  };
  window.setTimeout(look, 3000);
})();
