// A recording player: the browser's own audio controls, with the waveform drawn on a canvas
// (decoded by Web Audio); clicking or using the arrow keys on the waveform seeks.

import { api } from "./api.js";
import { el } from "./ui.js";

function peaks(buffer, columns) {
  const data = buffer.getChannelData(0);
  const step = Math.max(1, Math.floor(data.length / columns));
  const result = [];
  for (let column = 0; column < columns; column += 1) {
    let peak = 0;
    for (let index = column * step; index < Math.min(data.length, (column + 1) * step); index += 1) {
      peak = Math.max(peak, Math.abs(data[index]));
    }
    result.push(peak);
  }
  return result;
}

function draw(canvas, levels, played) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  levels.forEach((level, column) => {
    context.fillStyle = column / levels.length <= played ? "#1d4ed8" : "#8a93a3";
    const bar = Math.max(1, level * height);
    context.fillRect(column, (height - bar) / 2, 1, bar);
  });
}

/** Build the player for `url` into `container`. */
export async function recordingPlayer(container, url) {
  const response = await api("GET", url, undefined, { raw: true });
  if (!response.ok) {
    container.replaceChildren(el("p", { class: "empty" }, "This call has no recording. Turn on recording in the agent's settings to keep the next calls."));
    return;
  }
  const bytes = await response.arrayBuffer();
  const source = URL.createObjectURL(new Blob([bytes], { type: response.headers.get("Content-Type") || "audio/wav" }));
  const audio = el("audio", { controls: true, src: source, preload: "metadata", "aria-label": "Call recording" });
  const canvas = el("canvas", { width: 800, height: 80, tabindex: 0, role: "slider", "aria-label": "Waveform: seek in the recording", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 });
  container.replaceChildren(el("div", { class: "player" }, canvas, audio));
  let levels = [];
  try {
    const context = new (window.AudioContext || window.webkitAudioContext)();
    levels = peaks(await context.decodeAudioData(bytes.slice(0)), canvas.width);
    context.close();
  } catch {
    canvas.hidden = true; // undecodable here: the audio element still plays it
  }
  const redraw = () => {
    const played = audio.duration ? audio.currentTime / audio.duration : 0;
    canvas.setAttribute("aria-valuenow", Math.round(played * 100));
    draw(canvas, levels, played);
  };
  const seek = (fraction) => {
    if (audio.duration) audio.currentTime = Math.min(1, Math.max(0, fraction)) * audio.duration;
    redraw();
  };
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    seek((event.clientX - box.left) / box.width);
  });
  canvas.addEventListener("keydown", (event) => {
    if (!audio.duration) return;
    const now = audio.currentTime / audio.duration;
    if (event.key === "ArrowRight") seek(now + 0.05);
    else if (event.key === "ArrowLeft") seek(now - 0.05);
    else if (event.key === " ") { event.preventDefault(); audio.paused ? audio.play() : audio.pause(); }
  });
  audio.addEventListener("timeupdate", redraw);
  audio.addEventListener("loadedmetadata", redraw);
  redraw();
}
