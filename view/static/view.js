// The live view's page: frames, plots, the trail, the node table, teleop. No build step: plain JS and uPlot.
"use strict";

const WINDOW_S = 30;                      // seconds of plot kept
const SERIES = {                          // plot -> [series, label, colour]
  error: [["cross_track_mm", "cross-track mm", "#c22"], ["offset_mm", "line offset mm", "#27c"],
          ["heading_deg", "heading °", "#2a2"]],
  wheels: [["cmd_left", "cmd left m/s", "#27c"], ["cmd_right", "cmd right m/s", "#c72"],
           ["speed_left", "left m/s", "#6af"], ["speed_right", "right m/s", "#fa6"]],
  latency: [["loop_ms", "loop latency ms", "#a2a"]],
};
const KEYS = { w: "faster", ArrowUp: "faster", s: "slower", ArrowDown: "slower", a: "left", ArrowLeft: "left",
               d: "right", ArrowRight: "right", " ": "stop" };

// What a test (or a curious user, in the console) can read: counts that only grow while it works.
window.viewStats = { frames: 0, lines: 0, states: 0, samples: 0, trail: 0, track: 0, nodes: 0, teleop: null, safety: [], keys: 0,
                     plotted: 0, latest: {} };

const camera = document.getElementById("camera");
const cameraCtx = camera.getContext("2d");
const trailCanvas = document.getElementById("trail");
const trailCtx = trailCanvas.getContext("2d");
const trail = [];
let trailKind = "";
let track = null;                          // the simulator's track: {name, points, width, boxes}; null on a real car
const data = {};                           // plot -> [times, column per series]
let dirty = false;
const plots = {};
let socket = null;
let lastFrame = 0;
let manual = false;

function makePlots() {
  for (const [name, series] of Object.entries(SERIES)) {
    const element = document.getElementById("plot-" + name);
    const opts = {
      width: Math.max(260, element.clientWidth || 480), height: 150,
      scales: { x: { time: true } }, legend: { live: false },
      series: [{}].concat(series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: true }))),
    };
    plots[name] = new uPlot(opts, [[]].concat(series.map(() => [])), element);
  }
}

// Each plot keeps aligned columns: a row per distinct time, a value or null per series.
function plotOf(series) {
  for (const [name, list] of Object.entries(SERIES)) {
    const k = list.findIndex(([s]) => s === series);
    if (k >= 0) return [name, k];
  }
  return [null, -1];
}

function addSample(t, series, value) {
  window.viewStats.latest[series] = value;
  const [name, k] = plotOf(series);
  if (!name) return;
  const columns = data[name] || (data[name] = [[]].concat(SERIES[name].map(() => [])));
  const times = columns[0];
  if (!times.length || times[times.length - 1] !== t) {
    times.push(t);
    for (let c = 1; c < columns.length; c++) columns[c].push(null);
  }
  columns[k + 1][times.length - 1] = value;
  dirty = true;
}

function trimAndRedraw() {
  if (!dirty) return;
  dirty = false;
  for (const [name, columns] of Object.entries(data)) {
    const times = columns[0], cut = times[times.length - 1] - WINDOW_S;
    let k = 0;
    while (k < times.length && times[k] < cut) k++;
    if (k) for (const column of columns) column.splice(0, k);
    plots[name].setData(columns);
    window.viewStats.plotted = Math.max(window.viewStats.plotted, times.length);
  }
}

function polyline(points, px, py) {
  trailCtx.beginPath();
  points.forEach(([x, y], i) => (i ? trailCtx.lineTo(px(x), py(y)) : trailCtx.moveTo(px(x), py(y))));
  trailCtx.stroke();
}

// The track (when the run has one) with the trail over it, scaled to fit both; the car as an arrow.
function drawTrail() {
  const w = trailCanvas.width, h = trailCanvas.height;
  trailCtx.clearRect(0, 0, w, h);
  const shown = track ? track.points.concat(...(track.edges || []), trail) : trail;
  if (!shown.length) return;
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of shown) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const scale = Math.min(w * 0.9 / Math.max(x1 - x0, 0.5), h * 0.9 / Math.max(y1 - y0, 0.5));
  const px = (x) => w / 2 + (x - (x0 + x1) / 2) * scale, py = (y) => h / 2 - (y - (y0 + y1) / 2) * scale;
  trailCtx.lineJoin = "round";
  if (track && (track.edges || []).length) {  // a road: solid edges, a dashed centre, the lane to keep to
    trailCtx.strokeStyle = "#555"; trailCtx.lineWidth = Math.max(1.5, track.width * scale);
    for (const edge of track.edges) polyline(edge, px, py);
    trailCtx.setLineDash([6, 6]); polyline(track.centre, px, py); trailCtx.setLineDash([]);
    trailCtx.strokeStyle = "#ccc"; trailCtx.lineWidth = 1;
    polyline(track.points, px, py);
  } else if (track) {
    trailCtx.strokeStyle = "#333"; trailCtx.lineWidth = Math.max(2, track.width * scale);
    polyline(track.points, px, py);
  }
  if (track) {
    trailCtx.fillStyle = "#a33";           // the boxes standing on the floor
    for (const [bx, by, bw, bd] of track.boxes || []) {
      trailCtx.fillRect(px(bx - bw / 2), py(by + bd / 2), bw * scale, bd * scale);
    }
  }
  if (!trail.length) return;
  trailCtx.strokeStyle = "#27c"; trailCtx.lineWidth = 2;
  polyline(trail, px, py);
  const [x, y, heading] = trail[trail.length - 1];
  trailCtx.save(); trailCtx.translate(px(x), py(y)); trailCtx.rotate(-heading);
  trailCtx.fillStyle = "#c22"; trailCtx.beginPath();
  trailCtx.moveTo(12, 0); trailCtx.lineTo(-8, 7); trailCtx.lineTo(-8, -7); trailCtx.closePath(); trailCtx.fill();
  trailCtx.restore();
}

function showNodes(rows) {
  const table = document.getElementById("nodes");
  const head = "<tr><th>node</th><th>state</th><th>out/s</th><th>in/s</th><th>drops</th><th>lat p50/p99 ms</th>" +
               "<th>cpu %</th><th>machine</th></tr>";
  const lat = (r) => (r.latency_p50_ms < 0 ? "-" : r.latency_p50_ms.toFixed(2) + " / " + r.latency_p99_ms.toFixed(2));
  table.innerHTML = head + rows.map((r) => `<tr><td>${r.id}</td><td>${r.state}</td><td>${r.sent_rate.toFixed(1)}</td>` +
    `<td>${r.received_rate.toFixed(1)}</td><td>${r.dropped}</td><td>${lat(r)}</td><td>${r.cpu_percent.toFixed(1)}</td>` +
    `<td>${r.machine || "here"}</td></tr>`).join("");
  window.viewStats.nodes = rows.length;
}

function showTeleop(t) {
  window.viewStats.teleop = t;
  manual = t.manual;
  document.getElementById("manual").checked = t.manual;
  document.getElementById("drive").textContent = t.manual
    ? `manual: ${t.speed.toFixed(2)} m/s, turn ${t.turn.toFixed(1)} 1/m` : "auto";
  const last = t.last && t.last.left !== undefined ? ` last sent left ${t.last.left} right ${t.last.right}` : "";
  document.getElementById("teleopinfo").textContent =
    `into ${t.target}${t.commander ? " (instead of " + t.commander + ")" : ""}: ${t.published} sent${last}` +
    (t.error ? "  — " + t.error : "");
}

function onState(state) {
  const stats = window.viewStats;
  stats.states++;
  stats.pages = state.pages;
  for (const [t, series, value] of state.samples) addSample(t, series, value);
  stats.samples += state.samples.length;
  if (state.trail_kind !== trailKind) {   // odometry until a pose comes (the simulator's): start again
    trail.length = 0; trailKind = state.trail_kind;
    document.getElementById("trailkind").textContent = trailKind === "odometry" ? "(odometry)" : "";
  }
  for (const point of state.trail) trail.push(point);
  if (trail.length > 6000) trail.splice(0, trail.length - 6000);
  stats.trail += state.trail.length;
  if (state.trail.length) drawTrail();
  showNodes(state.nodes);
  showTeleop(state.teleop);
  document.getElementById("status").textContent =
    (state.status || "") + (state.lost ? `  (view lost ${state.lost} messages)` : "") + `  pages: ${state.pages}`;
  document.getElementById("ended").style.display = state.ended ? "inline" : "none";
  showSafety(state.safety || []);
}

function showSafety(held) {            // the safety stops (and searches) in force: a banner, stops first
  window.viewStats.safety = held;
  const banner = document.getElementById("safety");
  const stops = held.filter((e) => e.change === "stop");
  banner.style.display = held.length ? "block" : "none";
  banner.className = stops.length ? "" : "search";
  banner.textContent = (stops.length ? stops : held).map((e) => `${e.node}: ${e.text}`).join("  ·  ");
}

function onText(message) {
  if (message.type === "track") {          // once, first: the tape the simulator drives on
    track = message;
    window.viewStats.track = track.points.length;
    window.viewStats.edges = (track.edges || []).length;
    document.getElementById("trailtitle").textContent = `track ${track.name}: the car and its trail`;
    drawTrail();
  } else {
    onState(message);
  }
}

async function onFrame(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const image = await createImageBitmap(new Blob([new Uint8Array(buffer, 4 + length)], { type: "image/jpeg" }));
  if (camera.width !== header.width) { camera.width = header.width; camera.height = header.height; }
  cameraCtx.drawImage(image, 0, 0);
  if (header.line.length) {
    cameraCtx.strokeStyle = header.found ? "#0f0" : "#f80"; cameraCtx.lineWidth = 3; cameraCtx.beginPath();
    header.line.forEach(([u, v], i) => (i ? cameraCtx.lineTo(u, v) : cameraCtx.moveTo(u, v)));
    cameraCtx.stroke();
    window.viewStats.lines++;
  }
  lastFrame = header.number;
  window.viewStats.frames++;
  document.getElementById("frameinfo").textContent = `frame ${header.frame ?? header.number}`;
  requestAnimationFrame(askFrame);          // the next frame only once this one is drawn: none queue up
}

function askFrame() {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "frame", after: lastFrame }));
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function act(action) {
  if (!manual) return;
  window.viewStats.keys++;
  send({ type: "act", action });
}

function pollGamepad() {
  const pad = navigator.getGamepads ? [...navigator.getGamepads()].find((p) => p) : null;
  if (pad && manual) {
    const [, stickY, stickX] = pad.axes;
    if (Math.abs(stickY) > 0.1 || Math.abs(stickX) > 0.1) send({ type: "drive", speed: -stickY * 0.8, turn: -stickX * 6 });
  }
  setTimeout(pollGamepad, 100);
}

function connect() {
  socket = new WebSocket(`ws://${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => askFrame();
  socket.onmessage = (event) => (typeof event.data === "string" ? onText(JSON.parse(event.data)) : onFrame(event.data));
  socket.onclose = () => {
    document.getElementById("status").textContent = "disconnected; reconnecting…";
    setTimeout(connect, 1000);
  };
}

document.addEventListener("keydown", (event) => {
  const action = KEYS[event.key];
  if (action && event.target.tagName !== "INPUT") { event.preventDefault(); act(action); }
});
for (const button of document.querySelectorAll("#teleop button")) {
  button.addEventListener("pointerdown", (event) => { event.preventDefault(); act(button.dataset.act); });
}
document.getElementById("manual").addEventListener("change", (event) => send({ type: "manual", on: event.target.checked }));
document.getElementById("stop").addEventListener("click", () => send({ type: "stop" }));

makePlots();
setInterval(trimAndRedraw, 250);         // plots at 4 Hz: smooth enough, and cheap for a small computer
connect();
pollGamepad();
