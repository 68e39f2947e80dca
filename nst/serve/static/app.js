// The page uses the JSON API only (docs/serve.md). No library, nothing from another site.
"use strict";
const $ = (id) => document.getElementById(id);
let models = [], photo = null, job = null, poll = null;

function showError(message) { const e = $("error"); e.textContent = message || ""; e.hidden = !message; }

async function failure(response) {
  try { return (await response.json()).error || response.statusText; } catch (e) { return response.statusText; }
}

function current() { return models.find((m) => m.name === $("model").value); }

function chooseModel() {
  const m = current();
  if (!m) return;
  const up = m.kind === "upscale";
  $("model-info").textContent = up ? `Super-resolution, x${m.factor}` : (m.styles || []).join(", ");
  $("style-row").hidden = m.kind !== "multistyle";
  $("mix").hidden = m.kind !== "multistyle";
  $("strength-row").hidden = up;
  $("style-options").hidden = up;
  $("gatys").hidden = up;
  $("strength-label").textContent = m.kind === "strength" ? "Strength (the network's input)" : "Strength (blend with the photo)";
  $("go").textContent = up ? `Upscale x${m.factor}` : "Stylize";
  const style = $("style"), mix = $("mix");
  style.innerHTML = ""; mix.innerHTML = "";
  if (m.kind === "multistyle") {
    style.add(new Option("a mix (sliders below)", ""));
    m.styles.forEach((name, i) => {
      style.add(new Option(name, String(i)));
      const label = document.createElement("label");
      label.innerHTML = `<span></span> <input type="range" min="0" max="1" step="0.05" value="${i === 0 ? 1 : 0}">`;
      label.querySelector("span").textContent = name;
      mix.appendChild(label);
    });
    style.value = "0";
  }
  mix.hidden = m.kind !== "multistyle" || style.value !== "";
  ready();
}

// Gatys optimizes for one painting: with a multi-style model's mix chosen there is none to follow.
function ready() {
  const m = current(), mixing = m && m.kind === "multistyle" && $("style").value === "";
  $("go").disabled = !photo || !m;
  $("gatys-go").disabled = !photo || !m || job !== null || mixing;
  $("gatys-go").title = mixing ? "pick one style: Gatys follows one painting" : "";
}

function setPhoto(file) {
  if (!file) return;
  photo = file;
  $("preview").src = URL.createObjectURL(file);
  showError("");
  ready();
}

function form() {
  const data = new FormData(), m = current();
  data.append("image", photo);
  data.append("model", m.name);
  return data;
}

async function run() {
  const m = current(), data = form();
  if (m.kind !== "upscale") {
    if (m.kind === "multistyle") {
      if ($("style").value !== "") data.append("style", $("style").value);
      else data.append("style_mix", [...$("mix").querySelectorAll("input")].map((i) => i.value).join(","));
    }
    data.append("strength", $("strength").value);
    data.append("preserve_color", $("preserve").checked ? "true" : "false");
    if ($("max-side").value) data.append("max_side", $("max-side").value);
  }
  $("go").disabled = true;
  $("time").textContent = "working...";
  try {
    const response = await fetch(m.kind === "upscale" ? "/api/upscale" : "/api/stylize", { method: "POST", body: data });
    if (!response.ok) { showError(await failure(response)); $("time").textContent = "Network"; return; }
    const url = URL.createObjectURL(await response.blob());
    $("result").src = url;
    $("download").href = url;
    $("download").download = `${photo.name.replace(/\.[^.]*$/, "")}_${m.name}.png`;
    $("download").hidden = false;
    const seconds = Number(response.headers.get("X-NST-Seconds"));
    $("time").textContent = `${m.name}: ${response.headers.get("X-NST-Size")} in ${seconds.toFixed(2)} s`;
    showError("");
  } catch (e) {
    showError(`the server did not answer (${e.message})`);
  } finally { ready(); }
}

// One poll at a time (the next is scheduled when this one has its answer), for the job it began with.
async function followGatys(id) {
  if (id !== job) return;
  let s;
  try {
    const response = await fetch(`/api/gatys/${id}`);
    if (!response.ok) { showError(await failure(response)); if (id === job) stopFollowing(); return; }
    s = await response.json();
  } catch (e) { showError(`the server did not answer (${e.message})`); if (id === job) stopFollowing(); return; }
  if (id !== job) return;
  const loss = s.loss === null ? "" : `, loss ${s.loss.toFixed(3)}`;
  $("gatys-status").textContent = `Gatys: ${s.state}, step ${s.step} of ${s.iterations}${loss}, ${s.seconds.toFixed(1)} s`;
  if (s.image) $("gatys-image").src = `/api/gatys/${id}/image?step=${s.step}`;
  if (s.state === "failed") showError(`Gatys: ${s.error}`);
  if (["done", "cancelled", "failed"].includes(s.state)) stopFollowing();
  else poll = setTimeout(() => followGatys(id), 500);
}

function stopFollowing() { clearTimeout(poll); poll = null; job = null; $("gatys-cancel").disabled = true; ready(); }

async function startGatys() {
  const data = form(), m = current();
  if (m.kind === "multistyle" && $("style").value !== "") data.append("style", $("style").value);
  data.append("iterations", $("gatys-iterations").value);
  data.append("max_side", $("gatys-size").value);
  const response = await fetch("/api/gatys", { method: "POST", body: data });
  if (!response.ok) { showError(await failure(response)); return; }
  job = (await response.json()).id;
  $("gatys-status").textContent = "Gatys: queued";
  $("gatys-cancel").disabled = false;
  ready();
  poll = setTimeout(() => followGatys(job), 500);
}

async function cancelGatys() {
  if (!job) return;
  const response = await fetch(`/api/gatys/${job}`, { method: "DELETE" });
  if (!response.ok) showError(await failure(response));
}

async function init() {
  const response = await fetch("/api/models");
  if (!response.ok) { showError(await failure(response)); return; }
  models = await response.json();
  for (const m of models) $("model").add(new Option(`${m.name} (${m.kind})`, m.name));
  chooseModel();
}

$("file").addEventListener("change", (e) => setPhoto(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setPhoto(e.dataTransfer.files[0]); });
$("model").addEventListener("change", chooseModel);
$("strength").addEventListener("input", () => { $("strength-value").textContent = Number($("strength").value).toFixed(2); });
$("strength").addEventListener("change", () => { if (photo) run(); });
$("style").addEventListener("change", () => { $("mix").hidden = $("style").value !== ""; ready(); });
$("go").addEventListener("click", run);
$("gatys-go").addEventListener("click", startGatys);
$("gatys-cancel").addEventListener("click", cancelGatys);
init();
