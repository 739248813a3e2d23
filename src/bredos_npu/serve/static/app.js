"use strict";
// The page of `bredos-npu serve`: sends an image to the native API and draws what comes back.
// No framework, no build step, nothing fetched from outside this server.

const COLOURS = ["#e63946", "#2a9d8f", "#e9c46a", "#264653", "#f4a261", "#8338ec", "#3a86ff", "#ff006e"];
const $ = (id) => document.getElementById(id);
let models = [];
let lastFile = null;
window.bredosDrawn = [];  // what the last result drew, for people reading the page source and for tests

function apiKey() { return $("api-key").value || sessionStorage.getItem("bredos-api-key") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function selected() { return models.find((m) => m.name === $("model").value); }

function showOptions() {
  const model = selected();
  $("threshold-label").hidden = !model || model.task !== "detect";
  $("topk-label").hidden = !model || model.task !== "classify";
}

async function loadModels() {
  try {
    models = (await api("/v1/models")).models;
  } catch (error) {
    return say(`Cannot list the models: ${error.message}`, true);
  }
  $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.task})`, m.name)));
  showOptions();
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

async function run(file) {
  const model = selected();
  if (!file || !model) return;
  lastFile = file;
  document.body.dataset.state = "running";
  say(`Sending ${file.name} to ${model.name}…`);
  const form = new FormData();
  form.append("image", file, file.name);
  const query = new URLSearchParams({ model: model.name });
  if (model.task === "detect") query.set("threshold", $("threshold").value);
  if (model.task === "classify") query.set("top_k", $("top-k").value);
  if (model.task === "segment") query.set("mask", "1");
  const started = performance.now();
  let result;
  try {
    result = await api(`/v1/${model.task}?${query}`, { method: "POST", body: form });
  } catch (error) {
    document.body.dataset.state = "error";
    return say(error.message, true);
  }
  const roundTrip = performance.now() - started;
  await draw(file, model, result);
  $("timings").textContent = `${result.backend.toUpperCase()} · preprocess ${result.preprocess_ms.toFixed(1)} ms · ` +
    `inference ${result.inference_ms.toFixed(1)} ms · round trip ${roundTrip.toFixed(0)} ms`;
  say(`${file.name}: ${result.width}×${result.height}`);
  document.body.dataset.state = "done";
  refreshStatus();
}

function item(text, colour) {
  const li = document.createElement("li");
  li.textContent = text;
  if (colour) li.style.borderLeft = `6px solid ${colour}`;
  return li;
}

async function draw(file, model, result) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("canvas");
  canvas.width = result.width;
  canvas.height = result.height;
  const g = canvas.getContext("2d");
  g.drawImage(bitmap, 0, 0, result.width, result.height);
  const line = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 200));
  g.lineWidth = line;
  g.font = `${Math.max(12, Math.round(Math.min(canvas.width, canvas.height) / 30))}px sans-serif`;
  const drawn = [];
  const list = [];
  if (model.task === "detect") {
    // Best last, so it stays on top where boxes overlap.
    result.detections.map((d, i) => [d, COLOURS[i % COLOURS.length]]).reverse().forEach(([d, colour]) => {
      const b = d.box;
      g.strokeStyle = colour;
      g.strokeRect(b.xmin, b.ymin, b.xmax - b.xmin, b.ymax - b.ymin);
      label(g, `${d.label} ${(d.score * 100).toFixed(0)}%`, b.xmin, b.ymin, colour);
      drawn.unshift({ kind: "box", label: d.label, score: d.score, colour, ...b });
    });
    result.detections.forEach((d, i) => list.push(item(`${d.label} ${(d.score * 100).toFixed(1)}%`, COLOURS[i % COLOURS.length])));
  } else if (model.task === "pose") {
    const points = result.keypoints;
    g.strokeStyle = COLOURS[1];
    (model.skeleton || []).forEach(([a, b]) => {
      if (points[a].score < 0.2 || points[b].score < 0.2) return;
      g.beginPath(); g.moveTo(points[a].x, points[a].y); g.lineTo(points[b].x, points[b].y); g.stroke();
      drawn.push({ kind: "bone", from: points[a].name, to: points[b].name });
    });
    g.fillStyle = COLOURS[0];
    points.filter((p) => p.score >= 0.2).forEach((p) => {
      g.beginPath(); g.arc(p.x, p.y, line * 2, 0, 2 * Math.PI); g.fill();
      drawn.push({ kind: "keypoint", label: p.name, score: p.score, x: p.x, y: p.y });
    });
    points.forEach((p) => list.push(item(`${p.name} ${(p.score * 100).toFixed(0)}%`)));
  } else if (model.task === "segment") {
    if (result.mask) {
      const mask = await createImageBitmap(await (await fetch(`data:image/png;base64,${result.mask}`)).blob());
      g.drawImage(mask, 0, 0, result.width, result.height);
      drawn.push({ kind: "mask", classes: result.classes.map((c) => c.label) });
    }
    result.classes.forEach((c) => list.push(item(`${c.label} ${(c.share * 100).toFixed(1)}% of pixels`)));
  } else {
    result.classes.forEach((c, i) => {
      list.push(item(`${c.label} ${(c.score * 100).toFixed(1)}%`));
      drawn.push({ kind: "class", label: c.label, score: c.score, rank: i + 1 });
    });
    if (result.classes.length) label(g, `${result.classes[0].label} ${(result.classes[0].score * 100).toFixed(0)}%`, 0, 0, COLOURS[0]);
  }
  $("results").replaceChildren(...list);
  window.bredosDrawn = drawn;
}

function label(g, text, x, y, colour) {
  const height = parseInt(g.font, 10) + 4;
  const width = g.measureText(text).width + 8;
  const top = y - height >= 0 ? y - height : y;
  g.fillStyle = colour;
  g.fillRect(x, top, width, height);
  g.fillStyle = "#fff";
  g.fillText(text, x + 4, top + height - 5);
}

async function refreshStatus() {
  let status;
  try {
    status = await api("/v1/status");
  } catch (error) {
    $("verdict").textContent = error.message;
    return;
  }
  const verdict = $("verdict");
  verdict.textContent = status.doctor.verdict;
  verdict.className = `badge ${status.doctor.npu_ready ? "ready" : "cpu"}`;
  $("queue").textContent = `queue ${status.queue.depth}/${status.queue.capacity} · up ${status.uptime_s} s`;
  $("models").tBodies[0].replaceChildren(...status.models.map((m) => {
    const row = document.createElement("tr");
    const nodes = m.backend.nodes;
    const cells = [m.name, m.task, m.backend.name.toUpperCase(),
      `${nodes.npu_nodes}/${nodes.model_nodes} nodes (${(m.npu_share * 100).toFixed(0)}%)`];
    cells.forEach((text) => { const cell = document.createElement("td"); cell.textContent = text; row.append(cell); });
    if (m.backend.fallback_reason) row.cells[2].title = m.backend.fallback_reason;
    const predicted = document.createElement("small");
    predicted.textContent = `inspect predicts ${m.predicted}`;
    row.cells[3].append(document.createElement("br"), predicted);
    return row;
  }));
  $("counters").textContent = Object.entries(status.counters).map(([k, v]) => `${k}: ${v}`).join(" · ");
}

// Live sources (serve --source NAME=URL): an <img> on each MJPEG stream, counters under it.
async function refreshStreams() {
  let listing;
  try {
    listing = await api("/v1/streams");
  } catch (error) {
    return;  // no sources (404), or no key yet
  }
  $("live").hidden = listing.streams.length === 0;
  for (const s of listing.streams) {
    let figure = $(`stream-${s.name}`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.id = `stream-${s.name}`;
      const img = document.createElement("img");
      img.alt = `live: ${s.name}`;
      const key = apiKey();
      img.src = `/v1/streams/${encodeURIComponent(s.name)}/mjpeg` + (key ? `?api_key=${encodeURIComponent(key)}` : "");
      figure.append(img, document.createElement("figcaption"));
      $("streams").append(figure);
    }
    const delay = s.latency_ms.median === null ? "–" : `${s.latency_ms.median} ms`;
    figure.querySelector("figcaption").textContent = `${s.name}: ${s.state} · ${s.fps_in} frames/s in, ` +
      `${s.fps_out} analysed · ${s.dropped} dropped · ${s.reconnects} reconnections · delay ${delay}` +
      (s.error ? ` · ${s.error}` : "");
  }
}

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); run(e.dataTransfer.files[0]); });
  $("file").addEventListener("change", (e) => run(e.target.files[0]));
  $("model").addEventListener("change", () => { showOptions(); run(lastFile); });
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("bredos-api-key", $("api-key").value);
    loadModels(); refreshStatus(); $("streams").replaceChildren(); refreshStreams();
  });
  $("api-key").value = sessionStorage.getItem("bredos-api-key") || "";
}

wire();
loadModels().then(refreshStatus).then(refreshStreams);
setInterval(refreshStatus, 5000);
setInterval(refreshStreams, 2000);
