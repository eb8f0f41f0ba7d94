// The driver station page: wires the MQTT link to the drive, watch and program panels.
import { Link } from "./link.js";
import { BUTTONS, Driver, keyName } from "./drive.js";
import { Console, DeviceTable, Plot, showServices } from "./watch.js";
import { Program } from "./program.js";

const $ = (selector) => document.querySelector(selector);
const LOGIN_KEY = "runtime-driver-station-login";
const RTT_EVERY_MS = 1000;

const state = {
  config: null, link: null, readOnly: false, mode: "unknown", services: {}, rtt: null,
};

// -- messages ---------------------------------------------------------------------------------
function say(text, level = "info", key = null) {
  const box = $("#messages");
  if (key) box.querySelectorAll(`[data-key="${key}"]`).forEach((n) => n.remove());
  const item = document.createElement("div");
  item.className = `message ${level}`;
  if (key) item.dataset.key = key;
  item.textContent = text;
  const close = document.createElement("button");
  close.textContent = "×";
  close.className = "small";
  close.onclick = () => item.remove();
  item.append(close);
  box.append(item);
  if (level === "info") setTimeout(() => item.remove(), 6000);
}

// -- connection -------------------------------------------------------------------------------
function login() {
  try {
    return JSON.parse(sessionStorage.getItem(LOGIN_KEY)) || {};
  } catch {
    return {};
  }
}

function connect() {
  if (state.link) state.link.close();
  const { user = "", password = "" } = login();
  const config = state.config;
  const url = config.ws_url || `ws://${location.hostname || "localhost"}:${config.ws_port}/mqtt`;
  state.readOnly = user === "monitor";
  document.body.dataset.readonly = String(state.readOnly);
  $("#login-user").value = user;
  const link = new Link({ url, robot: config.robot, username: user, password,
    rpcAsLogin: Boolean(config.rpc_as_login) });
  state.link = link;
  setConnection("connecting", `connecting to ${url}…`);
  link.addEventListener("state", ({ detail: connected }) => {
    if (link !== state.link) return;
    if (connected) {
      setConnection("connected", `connected${user ? ` as ${user}` : ""}`);
      if (state.readOnly) {
        say(`Logged in as "${user}": watching only, the controls are disabled.`, "warning", "role");
      }
      refreshAliases();
      refreshValues();
      if (!program.source) loadProgram(true);
    } else if (!link.refused) {
      setConnection("disconnected", "disconnected: retrying…");
    }
    updateControls();
  });
  link.addEventListener("refused", ({ detail }) => {
    if (link !== state.link) return;  // a login replaced since: its refusal is old news
    setConnection("refused", "login refused");
    say(`${detail} Log in above (driver or monitor).`, "error", "login");
    updateControls();
  });
  link.addEventListener("problem", ({ detail }) => {
    if (link === state.link) say(detail, "warning", "problem");
  });
  link.on("service/+/status", (levels, status) => {
    state.services[levels[1]] = status || { state: "offline" };
    showServices($("#services tbody"), state.services);
  });
  link.on("match", (_, match) => showMatch(match));
  link.on("device/+/info", (levels, info) => devices.info(levels[1], info));
  link.on("device/+/data", (levels, data) => devices.data(levels[1], data));
  link.on("log/student", (_, record) => console_.add(record));
  // Round trip for a login that can only read: MQTT's own ping (sent when the page is quiet).
  let pingAt = 0;
  link.client.on("packetsend", (packet) => { if (packet.cmd === "pingreq") pingAt = performance.now(); });
  link.client.on("packetreceive", (packet) => {
    if (packet.cmd === "pingresp" && pingAt && state.readOnly) showRtt(performance.now() - pingAt);
  });
}

function setConnection(kind, text) {
  const pill = $("#connection");
  pill.dataset.state = kind;
  pill.textContent = text;
}

function showRtt(ms) {
  state.rtt = ms;
  $("#rtt").textContent = ms === null ? "RTT –" : `RTT ${ms.toFixed(1)} ms`;
}

async function measureRtt() {
  const link = state.link;
  if (!link || !link.connected || state.readOnly) return;
  const start = performance.now();
  try {
    showMatch(await link.call("executor", "get_mode", [], {}, 3000));
    showRtt(performance.now() - start);
  } catch {
    showRtt(null);
  }
}

function showMatch(match) {
  const mode = (match && match.mode) || "unknown";
  state.mode = mode;
  const pill = $("#mode");
  pill.dataset.mode = mode;
  pill.textContent = `mode ${mode}${match && match.alliance ? ` · ${match.alliance}` : ""}` +
    `${match && match.start_pos ? ` · ${match.start_pos}` : ""}`;
  document.querySelectorAll("[data-mode-button]").forEach((b) =>
    b.classList.toggle("current", b.dataset.modeButton === mode));
  $("#btn-clear-estop").hidden = mode !== "estop";
  if (match) {
    $("#alliance").value = match.alliance || "";
    $("#start-pos").value = match.start_pos || "";
  }
}

// -- controls ---------------------------------------------------------------------------------
function canControl() {
  return Boolean(state.link && state.link.connected && !state.readOnly);
}

function updateControls() {
  const enabled = canControl();
  document.querySelectorAll("[data-control]").forEach((node) => { node.disabled = !enabled; });
}

async function setMode(mode, extra = {}) {
  if (!canControl()) {
    say(state.readOnly ? `"${login().user}" may only watch: mode not changed.` :
      "Not connected: mode not changed.", "error", "mode");
    return;
  }
  try {
    const match = await state.link.call("executor", "set_mode", [],
      { mode, alliance: $("#alliance").value || null, start_pos: $("#start-pos").value || null,
        ...extra }, 3000);
    showMatch(match);
  } catch (error) {
    say(`Mode ${mode} refused: ${error.message}`, "error", "mode");
  }
}

function clearEstop() {
  // an estop is latched (docs/deployment.md, Authority): clearing it is a deliberate act, and
  // the executor refuses it from a driver station login (only field control or an operator)
  if (window.confirm("Clear the estop? The robot goes to idle; start it again afterwards.")) {
    setMode("idle", { clear_estop: true });
  }
}

function estop() {
  driver.release(); // first: "input gone" already stops the motors in teleop
  setMode("estop");
}

function sending() {
  return canControl() && document.visibilityState === "visible" && document.hasFocus();
}

function showSending() {
  const banner = $("#sending");
  let why = null;
  if (!state.link || !state.link.connected) why = "not connected";
  else if (state.readOnly) why = "this login only watches";
  else if (document.visibilityState !== "visible") why = "the page is hidden";
  else if (!document.hasFocus()) why = "the page does not have the focus: click it to drive";
  banner.dataset.state = why ? "off" : "on";
  banner.textContent = why ? `Not sending input: ${why}.` :
    `Sending ${driver.source} input as gamepad ${driver.slot}.`;
}

function drawPad(input, source) {
  const [lx, ly, rx, ry] = input.axes;
  $("#stick-left .dot").style.transform = `translate(${lx * 28}px, ${-ly * 28}px)`;
  $("#stick-right .dot").style.transform = `translate(${rx * 28}px, ${-ry * 28}px)`;
  const buttons = $("#buttons");
  BUTTONS.forEach((name, i) => {
    buttons.children[i].classList.toggle("on", Boolean(input.buttons & (1 << i)));
  });
  $("#pad-source").textContent = source === "keyboard"
    ? "No gamepad: the keyboard drives (W A S D left stick, arrows right stick, J K L I: A B X Y)."
    : `Driving with ${source} (the keyboard adds to it).`;
  showSending();
}

const typing = (target) => target instanceof Element &&
  (target.closest(".cm-editor") || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));

function onKeyDown(event) {
  if (event.key === "Escape") { // estop wherever the focus is
    event.preventDefault();
    estop();
    return;
  }
  if (typing(event.target)) return;
  if (event.repeat && ["Enter", "T", "t", "A"].includes(event.key)) return; // one press, one call
  if (event.key === " ") {
    event.preventDefault();
    estop();
  } else if (event.key === "Enter") {
    event.preventDefault();
    setMode("idle");
  } else if (event.key === "T" || (event.key === "t" && event.shiftKey)) {
    setMode("teleop");
  } else if (event.key === "A" && event.shiftKey) {
    setMode("auto");
  } else {
    const key = keyName(event);
    if (key) {
      if (key.endsWith("_arrow")) event.preventDefault();
      driver.press(key);
    }
  }
}

// -- aliases and program ----------------------------------------------------------------------
async function refreshAliases() {
  try {
    devices.setAliases(await state.link.call("broker", "list_aliases"));
  } catch (error) {
    say(`Aliases not read: ${error.message}`, "warning", "alias");
  }
}

// device/<uid>/data carries changes only: the values before we came, once, from the broker.
async function refreshValues() {
  if (state.readOnly) return; // a watching login may not call; values come with each change
  try {
    const values = await state.link.call("broker", "values");
    for (const [uid, params] of Object.entries(values)) devices.data(uid, { params }, true);
  } catch (error) {
    say(`Device values not read: ${error.message}`, "warning", "values");
  }
}

async function changeAlias(uid, old, name) {
  try {
    if (old && old !== name) devices.setAliases(await state.link.call("broker", "del_alias", [], { name: old }));
    if (name) devices.setAliases(await state.link.call("broker", "set_alias", [], { name, uid }));
    say(name ? `Alias ${name} → ${uid}` : `Alias ${old} removed`, "info");
  } catch (error) {
    say(`Alias not changed: ${error.message}`, "error", "alias");
    refreshAliases();
  }
}

async function loadProgram(quiet = false) {
  const before = program.source;
  try {
    const program_ = await state.link.call("executor", "program");
    if (quiet && program.source !== before) return; // typed into meanwhile: keep that
    program.source = program_.source;
    if (!quiet) say(`Loaded the robot's program (sha256 ${program_.sha256.slice(0, 12)}…)`);
  } catch (error) {
    if (!quiet || !program.source) say(`The robot's program was not read: ${error.message}`, "warning", "program");
  }
}

async function loadSample() {
  const response = await fetch("sample.py");
  program.source = await response.text();
  say("Sample program loaded into the editor (not uploaded yet).");
}

async function upload() {
  const result = $("#upload-result");
  result.textContent = "uploading…";
  try {
    const stored = await state.link.call("executor", "upload", [], { source: program.source }, 10000);
    const warnings = stored.warnings || [];
    result.textContent = `uploaded, sha256 ${stored.sha256}` +
      (warnings.length ? `; warnings: ${warnings.join("; ")}` : "");
    result.dataset.sha256 = stored.sha256;
    await lint();
  } catch (error) {
    result.textContent = `upload refused: ${error.message}`;
    say(`Upload refused: ${error.message}`, "error", "upload");
  }
}

async function lint() {
  const list = $("#lint-list");
  list.replaceChildren();
  try {
    const messages = await state.link.call("broker", "lint", [], {}, 60000);
    const diagnostics = program.mark(messages);
    for (const [i, m] of messages.entries()) {
      const item = document.createElement("li");
      item.className = `lint ${diagnostics[i].severity}`;
      item.dataset.line = String(m.line);
      item.textContent = `line ${m.line}: ${m.message} (${m.symbol})`;
      item.onclick = () => program.goto(Number(m.line));
      list.append(item);
    }
    if (!messages.length) list.append(Object.assign(document.createElement("li"), { textContent: "lint: no messages" }));
  } catch (error) {
    say(`Lint failed: ${error.message}`, "error", "lint");
  }
}

// -- start ------------------------------------------------------------------------------------
const driver = new Driver({
  send: (topic, value, qos = 0) => state.link && state.link.connected &&
    state.link.publish(topic, value, { qos }).catch(() => {}),
  onPad: drawPad,
  active: sending,
});
const devices = new DeviceTable($("#devices tbody"), {
  onAlias: changeAlias, onPlot: (keys) => plot.setKeys(keys), canEdit: canControl,
});
const plot = new Plot($("#plot"), devices);
const program = new Program($("#editor"));
const console_ = new Console($("#console"), { onLine: (line) => program.goto(line) });

$("#buttons").append(...BUTTONS.map((name) => Object.assign(document.createElement("span"),
  { textContent: name.replace("button_", ""), className: "button", title: name })));
document.querySelectorAll("[data-mode-button]").forEach((b) => {
  b.onclick = () => setMode(b.dataset.modeButton);
});
$("#btn-estop").onclick = estop;
$("#btn-clear-estop").onclick = clearEstop;
$("#slot").onchange = (e) => driver.setSlot(Number(e.target.value));
$("#alliance").onchange = () => setMode(state.mode === "unknown" ? "idle" : state.mode);
$("#start-pos").onchange = () => setMode(state.mode === "unknown" ? "idle" : state.mode);
$("#btn-reload").onclick = () => loadProgram(false);
$("#btn-sample").onclick = loadSample;
$("#btn-upload").onclick = upload;
$("#btn-lint").onclick = lint;
$("#console-clear").onclick = () => $("#console").replaceChildren();
$("#login").onsubmit = (event) => {
  event.preventDefault();
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({
    user: $("#login-user").value.trim(), password: $("#login-password").value,
  }));
  $("#login-password").value = "";
  $("#messages").replaceChildren();
  connect();
};
window.addEventListener("keydown", onKeyDown);
window.addEventListener("keyup", (event) => driver.unpress(keyName(event)));
window.addEventListener("blur", () => { driver.release(); showSending(); });
window.addEventListener("pagehide", () => driver.release()); // tab closed: say the input is gone
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") driver.release();
  showSending();
});
setInterval(measureRtt, RTT_EVERY_MS);

state.config = await (await fetch("config.json")).json();
$("#robot-name").textContent = state.config.robot;
document.title = `${state.config.robot} · Runtime driver station`;
updateControls();
connect();

// For tests and curious students: the page's parts.
window.driverStation = { state, driver, devices, program, plot, console: console_, setMode };
