// Voice conversation: record from the microphone (MediaRecorder), send the recording, show the
// transcript and the answer as turns, and play the spoken answer.
(function () {
  "use strict";

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function addTurn(list, role, text) {
    const item = document.createElement("li");
    item.className = role;
    const who = document.createElement("b");
    who.textContent = role === "user" ? "You: " : "Assistant: ";
    item.appendChild(who);
    item.appendChild(document.createTextNode(text));
    list.appendChild(item);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.getElementById("voice");
    if (!root) return;
    const start = document.getElementById("record");
    const stop = document.getElementById("stop");
    const status = document.getElementById("voice-status");
    const turns = document.getElementById("turns");
    const player = document.getElementById("answer-audio");
    let recorder = null;
    let pieces = [];

    start.addEventListener("click", async function () {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        recorder = new MediaRecorder(stream);
      } catch (error) {
        status.textContent = "The microphone is not available: " + error.message;
        return;
      }
      pieces = [];
      recorder.addEventListener("dataavailable", function (event) { if (event.data.size) pieces.push(event.data); });
      recorder.addEventListener("stop", async function () {
        recorder.stream.getTracks().forEach(function (track) { track.stop(); });
        status.textContent = "Transcribing and answering…";
        const form = new FormData();
        form.append("file", new Blob(pieces, { type: recorder.mimeType || "audio/webm" }), "recording.webm");
        const response = await fetch(root.dataset.turnUrl, {
          method: "POST", body: form, headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin",
        });
        const reply = await response.json();
        if (reply.transcript) addTurn(turns, "user", reply.transcript);
        if (reply.answer) addTurn(turns, "assistant", reply.answer);
        if (!response.ok) {
          status.textContent = (reply.error && (reply.error.message || reply.error)) || "The turn failed.";
          return;
        }
        status.textContent = "Playing the answer.";
        player.src = reply.audio_url;
        player.play().catch(function (error) { status.textContent = "Press play to hear the answer (" + error.message + ")."; });
        player.addEventListener("ended", function () { status.textContent = "Your turn."; }, { once: true });
      });
      recorder.start();
      start.disabled = true;
      stop.disabled = false;
      status.textContent = "Listening…";
    });

    stop.addEventListener("click", function () {
      if (recorder && recorder.state === "recording") recorder.stop();
      start.disabled = false;
      stop.disabled = true;
    });
  });
})();
