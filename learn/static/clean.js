// car clean: scrub a recording's frames beside its commands, mark ranges to drop, save them beside it.
"use strict";

const state = { data: null, index: 0, drop: [], start: null, playing: null, plot: null, loaded: 0 };
const $ = (id) => document.getElementById(id);

// uPlot draws a new plot asynchronously; redrawing or moving its cursor before that breaks it
function drawn() {
  return state.plot && state.plot.scales.x.min !== null && state.plot.scales.x.min !== undefined;
}

function frameAt(index) {
  return Math.max(0, Math.min(state.data.frames - 1, index));
}

function dropped(stamp) {
  return state.drop.some((r) => r.start_ns <= stamp && stamp <= r.end_ns);
}

function show(index) {
  state.index = frameAt(index);
  const data = state.data, k = state.index;
  $("scrub").value = k;
  $("frame").src = "api/frame/" + k;
  $("frame").classList.toggle("dropped", dropped(data.stamps_ns[k]));
  const fmt = (v, d) => (v === null ? "–" : v.toFixed(d));
  $("where").textContent = `frame ${k + 1} of ${data.frames}  t ${data.t[k].toFixed(2)} s  ` +
    `speed ${fmt(data.speed[k], 2)} m/s  curvature ${fmt(data.curvature[k], 2)} 1/m  ` +
    `on road ${data.on_road[k] === null ? "–" : data.on_road[k] ? "yes" : "no"}` +
    (dropped(data.stamps_ns[k]) ? "  DROPPED" : "");
  if (drawn()) state.plot.setCursor({ left: state.plot.valToPos(k + 1, "x"), top: 10 });
}

function addRange(a, b) {
  const [first, last] = [frameAt(Math.min(a, b)), frameAt(Math.max(a, b))];
  state.drop.push({ start_ns: state.data.stamps_ns[first], end_ns: state.data.stamps_ns[last] });
  state.drop.sort((x, y) => x.start_ns - y.start_ns);
  listRanges();
  $("saved").textContent = "not saved yet";
  $("saved").classList.remove("error");
}

function indexOf(stamp) {
  const stamps = state.data.stamps_ns;
  let k = 0;
  while (k < stamps.length - 1 && stamps[k] < stamp) k++;
  return k;
}

function listRanges() {
  const list = $("ranges");
  list.innerHTML = "";
  state.drop.forEach((range, k) => {
    const a = indexOf(range.start_ns), b = indexOf(range.end_ns);
    const item = document.createElement("li");
    item.textContent = `frames ${a + 1}–${b + 1} (${state.data.t[a].toFixed(2)}–${state.data.t[b].toFixed(2)} s)`;
    const go = document.createElement("button");
    go.textContent = "show";
    go.onclick = () => show(a);
    const remove = document.createElement("button");
    remove.textContent = "keep";
    remove.title = "remove this range: keep its frames";
    remove.onclick = () => { state.drop.splice(k, 1); listRanges(); $("saved").textContent = "not saved yet"; };
    item.append(go, remove);
    list.append(item);
  });
  show(state.index);
  if (drawn()) state.plot.redraw();
}

function shadeDropped(u) {
  const ctx = u.ctx, data = state.data;
  ctx.save();
  ctx.fillStyle = "rgba(200, 30, 30, 0.15)";
  for (const range of state.drop) {
    const a = u.valToPos(indexOf(range.start_ns) + 1, "x", true);
    const b = u.valToPos(indexOf(range.end_ns) + 1, "x", true);
    ctx.fillRect(a, u.bbox.top, Math.max(2, b - a), u.bbox.height);
  }
  ctx.restore();
}

function makePlot() {
  const data = state.data;
  const width = Math.max(320, $("plot").clientWidth - 10);
  state.plot = new uPlot({
    width, height: 320,
    cursor: { drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: false } },
    series: [
      { label: "frame" },
      { label: "speed", stroke: "#1f77b4", spanGaps: false },
      { label: "curvature / 5", stroke: "#d62728" },
      { label: "on road", stroke: "#2ca02c" },
    ],
    hooks: {
      draw: [shadeDropped],
      setSelect: [(u) => {
        if (u.select.width < 3) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        addRange(Math.round(a) - 1, Math.round(b) - 1);
        u.setSelect({ width: 0, height: 0 }, false);
      }],
    },
  }, [data.t.map((_, k) => k + 1), data.speed, data.curvature.map((v) => (v === null ? null : v / 5)), data.on_road],
  $("plot"));
  state.plot.over.addEventListener("click", () => {
    if (state.plot.cursor.idx !== null && state.plot.cursor.idx !== undefined) show(state.plot.cursor.idx);
  });
}

async function save() {
  const answer = await fetch("api/drop", { method: "POST", body: JSON.stringify({ drop: state.drop }) });
  const body = await answer.json();
  $("saved").classList.toggle("error", !answer.ok);
  $("saved").textContent = answer.ok
    ? `saved ${body.ranges} range(s), ${body.dropped_frames} frame(s) left out, to ${body.saved}`
    : `not saved: ${body.error}`;
}

function togglePlay() {
  if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").textContent = "play"; return; }
  $("play").textContent = "pause";
  state.playing = setInterval(() => {
    if (state.index >= state.data.frames - 1) togglePlay(); else show(state.index + 1);
  }, 1000 / 30);
}

function markStart() { state.start = state.index; $("pending").textContent = `start at frame ${state.index + 1}`; }
function markEnd() {
  if (state.start === null) { $("pending").textContent = "mark a start first"; return; }
  addRange(state.start, state.index);
  state.start = null;
  $("pending").textContent = "";
}

async function load() {
  const answer = await fetch("api/recording");
  state.data = await answer.json();
  state.drop = state.data.drop;
  $("file").textContent = `${state.data.file}: ${state.data.frames} frames; the ranges go to ${state.data.sidecar}`;
  $("scrub").max = state.data.frames - 1;
  $("frame").onload = () => { state.loaded += 1; };
  makePlot();
  listRanges();
  show(0);
}

$("scrub").addEventListener("input", (e) => show(Number(e.target.value)));
$("prev").onclick = () => show(state.index - 1);
$("next").onclick = () => show(state.index + 1);
$("play").onclick = togglePlay;
$("mark-start").onclick = markStart;
$("mark-end").onclick = markEnd;
$("save").onclick = save;
document.addEventListener("keydown", (e) => {
  if (!state.data) return;
  const step = e.shiftKey ? 10 : 1;
  if (e.key === "ArrowLeft") show(state.index - step);
  else if (e.key === "ArrowRight") show(state.index + step);
  else if (e.key === " ") { e.preventDefault(); togglePlay(); }
  else if (e.key === "[") markStart();
  else if (e.key === "]") markEnd();
  else return;
  e.preventDefault();
});
load();
