// The page: pick or upload a clip, type an instruction, follow the job, show the result.
"use strict";

const $ = (id) => document.getElementById(id);
const DIMENSIONS = {
  overall: "Overall: all four hold",
  edit_accuracy: "Edit accuracy: the inferred change happened",
  preservation_consistency: "Preservation: nothing else changed",
  generation_naturalness: "Naturalness: smooth, coherent motion",
  generation_realism: "Realism: looks like the source's world",
};
let examples = [];
let maxInstruction = 1000;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// What lies outside what the model knows (unknown words, a clip unlike its training world).
function showWarnings(warnings) {
  const list = $("warnings");
  list.textContent = "";
  for (const w of warnings || []) {
    const item = document.createElement("li");
    item.textContent = w;
    list.appendChild(item);
  }
  list.hidden = !list.children.length;
}

// The server's own rules, checked here first so nothing is uploaded for an instruction it would refuse.
function instructionProblem(instruction) {
  if (!instruction) return "Type an instruction: what should change in the clip?";
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(instruction)) {
    return "The instruction is not valid text: it has half a character (a lone surrogate); type it again.";
  }
  if (instruction.length > maxInstruction) {
    return `The instruction is ${instruction.length} characters; at most ${maxInstruction}.`;
  }
  return "";
}

async function api(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status}`);
  }
  return body;
}

async function loadConfig() {
  const config = await api("/api/config");
  $("model").textContent = config.model;
  $("ready").textContent = config.ready ? "" : "(loading…)";
  $("limits").textContent = "Accepted: " + config.limits.text + ".";
  $("best-of").max = config.max_best_of;
  maxInstruction = config.max_instruction;
  $("critic-note").textContent = config.critic_note;
  examples = config.examples;
  for (const e of examples) {
    const option = document.createElement("option");
    option.value = e.name;
    option.textContent = `${e.name} (${e.category || "example"})`;
    $("example").appendChild(option);
  }
  if (examples.length) {
    $("example").value = examples[0].name;
    chooseExample();
  }
  if (!config.ready) setTimeout(pollReady, 1000);
}

async function pollReady() {
  const config = await api("/api/config");
  $("ready").textContent = config.ready ? "" : "(loading…)";
  if (config.load_errors.length) showError(config.load_errors[0]);
  else if (!config.ready) setTimeout(pollReady, 1000);
}

function chooseExample() {
  const e = examples.find((x) => x.name === $("example").value);
  $("file-label").hidden = Boolean(e);
  if (e && !$("instruction").value.trim()) $("instruction").value = e.instruction;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  showWarnings([]);
  const instruction = $("instruction").value.trim().replace(/\s+/g, " ");
  const problem = instructionProblem(instruction);
  if (problem) return showError(problem);
  const job = { instruction, best_of: parseInt($("best-of").value || "1", 10) };
  $("submit").disabled = true;
  $("result").hidden = true;
  try {
    const checked = await api("/api/check", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ instruction }),
    });
    showWarnings(checked.warnings);
    if ($("example").value) {
      job.example = $("example").value;
    } else {
      const file = $("file").files[0];
      if (!file) throw new Error("Choose a clip to upload, or pick a bundled example.");
      setStatus(0, "uploading the clip");
      const up = await api("/api/uploads?name=" + encodeURIComponent(file.name),
                           { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
      job.upload = up.upload;
    }
    const created = await api("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(job),
    });
    await follow(created.id);
  } catch (err) {
    showError(err.message);
    $("status").hidden = true;
  } finally {
    $("submit").disabled = false;
  }
}

function setStatus(progress, stage) {
  $("status").hidden = false;
  $("progress").value = progress;
  $("stage").textContent = stage;
}

async function follow(id) {
  for (;;) {
    const job = await api(`/api/jobs/${id}`);
    showWarnings(job.warnings);
    if (job.state === "queued") {
      setStatus(0, job.position ? `waiting: ${job.position} job(s) ahead` : "starting");
    } else if (job.state === "running") {
      setStatus(job.progress, job.stage);
    } else if (job.state === "done") {
      setStatus(1, "done");
      return showResult(job);
    } else {
      throw new Error(job.error || job.stage);
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

function showResult(job) {
  const r = job.result;
  $("source-video").src = r.source_url;
  $("edited-video").src = r.edited_url;
  for (const v of [$("source-video"), $("edited-video")]) v.play().catch(() => {});
  const body = $("scores").querySelector("tbody");
  body.textContent = "";
  for (const [key, label] of Object.entries(DIMENSIONS)) {
    const p = r.scores[key];
    const row = document.createElement("tr");
    row.className = key === "overall" ? "overall" : "";
    row.dataset.dimension = key;
    const bar = document.createElement("span");
    bar.style.width = `${Math.round(p * 120)}px`;
    row.innerHTML = "<td></td><td class='p'></td><td class='bar'></td>";
    row.cells[0].textContent = label;
    row.cells[1].textContent = p.toFixed(3);
    row.cells[2].appendChild(bar);
    body.appendChild(row);
  }
  $("candidates").textContent = r.candidates.length > 1
    ? `Best of ${r.candidates.length}: kept seed ${r.seed}; P(Yes) per seed: ` +
      r.candidates.map((c) => `${c.seed}: ${c.p_yes.toFixed(3)}`).join(", ")
    : "";
  $("download").href = r.download_url;
  $("about").textContent = `${r.frames} frames ${r.width}x${r.height}, ${r.steps} steps on ${r.device}, ` +
    `${r.seconds} s. Instruction: “${job.instruction}”`;
  $("result").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  $("example").addEventListener("change", chooseExample);
  $("form").addEventListener("submit", submit);
  loadConfig().catch((err) => showError("Cannot reach the server: " + err.message));
});
