// The page `ruclip serve` answers at "/": one self-contained HTML document
// (no files, no outside scripts) in Russian that talks to the JSON API of
// serve_command.cpp. Its state is in its address (?q=, camera=, since=), so a
// search can be linked.
#pragma once

namespace ruclip_cli {

constexpr const char* kSearchPage = R"html(<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ruclip: поиск по видео</title>
<style>
body { font-family: "DejaVu Sans", sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 14px 20px; }
header h1 { font-size: 20px; margin: 0 0 10px 0; font-weight: 600; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
input[type=search] { flex: 1 1 320px; font-size: 16px; padding: 8px 10px; border-radius: 4px; border: 0; }
select, button, label.upload { font-size: 15px; padding: 8px 10px; border-radius: 4px; border: 0; }
button { background: #3d7eff; color: #fff; cursor: pointer; }
label.upload { background: #39414f; color: #fff; cursor: pointer; }
label.upload input { display: none; }
#status { padding: 10px 20px; color: #4a5365; min-height: 1.2em; }
#hits { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 14px; padding: 0 20px 20px; }
.hit { background: #fff; border-radius: 6px; overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.15); cursor: pointer; margin: 0; }
.hit img { width: 100%; display: block; aspect-ratio: 4 / 3; object-fit: cover; background: #ccc; }
.hit figcaption { padding: 8px 10px; font-size: 13px; line-height: 1.5; }
.hit .camera { font-weight: 600; }
.hit .score { float: right; color: #3d7eff; }
#viewer { position: fixed; inset: 0; background: rgba(10,12,18,.85); display: none; align-items: center; justify-content: center; flex-direction: column; }
#viewer.open { display: flex; }
#viewer img.large { max-width: 80vw; max-height: 60vh; width: 640px; image-rendering: auto; border-radius: 4px; }
#viewer .caption { color: #fff; margin: 10px; font-size: 15px; }
#viewer .strip { display: flex; gap: 6px; margin-top: 8px; }
#viewer .strip img { width: 96px; border: 2px solid transparent; border-radius: 3px; cursor: pointer; }
#viewer .strip img.current { border-color: #3d7eff; }
</style>
</head>
<body>
<header>
  <h1>Поиск по камерам и видео</h1>
  <form id="search">
    <input type="search" id="q" name="q" placeholder="например: красная машина у ворот" autocomplete="off">
    <label class="upload">или картинка… <input type="file" id="picture" accept="image/*"></label>
    <select id="camera" name="camera"><option value="">все камеры</option></select>
    <select id="since" name="since">
      <option value="">за всё время</option><option value="1h">за час</option>
      <option value="1d">за сутки</option><option value="7d">за неделю</option><option value="30d">за месяц</option>
    </select>
    <button type="submit">Найти</button>
  </form>
</header>
<div id="status"></div>
<div id="hits"></div>
<div id="viewer"><img class="large" alt=""><div class="caption"></div><div class="strip"></div></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const state = new URLSearchParams(location.search);

function when(hit) {
  if (hit.camera !== undefined) {
    const t = new Date(hit.wall_time);
    return t.toLocaleString("ru-RU");
  }
  const s = (x) => { const m = Math.floor(x / 60), r = (x % 60).toFixed(1); return m + ":" + r.padStart(4, "0"); };
  return s(hit.start) + " – " + s(hit.end);
}

function where(hit) {
  return hit.camera !== undefined ? hit.camera : hit.file.split("/").pop();
}

function show(out) {
  const grid = $("hits");
  grid.textContent = "";
  $("status").textContent = out.hits.length ? "Найдено: " + out.hits.length + " (образцов в индексе: " + out.samples + ")"
                                            : "Ничего не найдено";
  for (const hit of out.hits) {
    const fig = document.createElement("figure");
    fig.className = "hit";
    fig.dataset.sample = hit.sample;
    fig.dataset.camera = where(hit);
    const img = document.createElement("img");
    img.src = "/api/thumbnail/" + hit.sample;
    img.alt = where(hit);
    const cap = document.createElement("figcaption");
    const cam = document.createElement("span");
    cam.className = "camera";
    cam.textContent = where(hit);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    const time = document.createElement("div");
    time.className = "time";
    time.textContent = when(hit);
    cap.append(cam, score, time);
    if (hit.labels) {
      const labels = document.createElement("div");
      labels.textContent = hit.labels.split(";").slice(0, 2).join(", ");
      cap.append(labels);
    }
    fig.append(img, cap);
    fig.addEventListener("click", () => open(hit));
    grid.append(fig);
  }
}

async function api(url, options) {
  const r = await fetch(url, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function filters() {
  const p = new URLSearchParams();
  if ($("camera").value) p.append("camera", $("camera").value);
  if ($("since").value) p.set("since", $("since").value);
  return p;
}

async function search() {
  const p = filters();
  const q = $("q").value.trim();
  const file = $("picture").files[0];
  $("status").textContent = "Ищем…";
  try {
    let out;
    if (file) {
      out = await api("/api/search?" + p, { method: "POST", body: file });
    } else if (q) {
      p.set("q", q);
      out = await api("/api/search?" + p);
    } else {
      $("status").textContent = "Введите текст или выберите картинку";
      return;
    }
    if (!file) history.replaceState(null, "", "?" + p);
    show(out);
  } catch (e) {
    $("status").textContent = "Ошибка: " + e.message;
  }
}

async function open(hit) {
  const v = $("viewer");
  v.querySelector("img.large").src = "/api/frame/" + hit.sample;
  v.querySelector(".caption").textContent = where(hit) + " · " + when(hit) + " · " + hit.score.toFixed(3);
  const strip = v.querySelector(".strip");
  strip.textContent = "";
  v.classList.add("open");
  const around = await api("/api/neighbours?n=3&sample=" + hit.sample);
  for (const n of around.neighbours) {
    const img = document.createElement("img");
    img.src = "/api/thumbnail/" + n.sample;
    img.title = n.wall_time ? new Date(n.wall_time).toLocaleString("ru-RU") : n.time.toFixed(1) + " с";
    if (n.sample === hit.sample) img.className = "current";
    img.addEventListener("click", (e) => { e.stopPropagation(); v.querySelector("img.large").src = "/api/frame/" + n.sample; });
    strip.append(img);
  }
}

$("viewer").addEventListener("click", () => $("viewer").classList.remove("open"));
$("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
$("picture").addEventListener("change", search);
$("camera").addEventListener("change", () => { if ($("q").value.trim() || $("picture").files[0]) search(); });
$("since").addEventListener("change", () => { if ($("q").value.trim() || $("picture").files[0]) search(); });

(async () => {
  try {
    const c = await api("/api/cameras");
    for (const s of c.sources.filter((s) => s.kind === "camera")) {
      const o = document.createElement("option");
      o.value = o.textContent = s.name;
      $("camera").append(o);
    }
  } catch (e) {
    $("status").textContent = "Ошибка: " + e.message;
  }
  if (state.get("camera")) $("camera").value = state.get("camera");
  if (state.get("since")) $("since").value = state.get("since");
  if (state.get("q")) { $("q").value = state.get("q"); search(); }
})();
</script>
</body>
</html>
)html";

}  // namespace ruclip_cli
