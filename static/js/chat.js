// Streams answers into the chat page over Server-Sent Events. No inline script: the page links this
// file, and each streaming answer carries its stream and stop URLs in data attributes.
(function () {
  "use strict";

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function connect(article) {
    if (article.dataset.connected) return;
    article.dataset.connected = "1";
    const content = article.querySelector(".content");
    const stop = article.querySelector("button.stop");
    const source = new EventSource(article.dataset.streamUrl);
    let text = "";

    source.addEventListener("token", function (event) {
      text += JSON.parse(event.data).text;
      content.textContent = text;
    });
    source.addEventListener("error", function (event) {
      // A server-sent "error" event carries data; a dropped connection does not (the browser reconnects).
      if (event.data) content.dataset.error = JSON.parse(event.data).message;
    });
    source.addEventListener("done", function (event) {
      source.close();
      const holder = document.createElement("div");
      holder.innerHTML = JSON.parse(event.data).html;
      const finished = holder.firstElementChild;
      article.replaceWith(finished);
      if (window.htmx) window.htmx.process(finished);
    });
    if (stop) {
      stop.addEventListener("click", function () {
        stop.disabled = true;
        stop.textContent = "Stopping…";
        fetch(article.dataset.stopUrl, { method: "POST", headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin" });
      });
    }
  }

  function connectAll(root) {
    root.querySelectorAll("[data-stream-url]").forEach(connect);
  }

  document.addEventListener("DOMContentLoaded", function () {
    connectAll(document);
    // The composer empties once its message is saved; a refused message (HX-Retarget to the form's
    // error) stays for the user to fix.
    document.body.addEventListener("htmx:afterRequest", function (event) {
      const form = event.detail.elt;
      if (form && form.id === "composer" && event.detail.successful && !event.detail.xhr.getResponseHeader("HX-Retarget")) {
        form.reset();
      }
    });
    document.body.addEventListener("htmx:afterSettle", function (event) {
      connectAll(event.target.parentNode || document);
    });
  });
})();
