// Watching: service statuses, devices with live values and aliases, a 30 s plot, the console.
import { uPlot } from "./vendor/vendor.js";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};

export function showServices(tbody, services) {
  tbody.replaceChildren(...Object.keys(services).sort().map((name) => {
    const s = services[name];
    return el("tr", { "data-service": name, "data-state": s.state },
      el("td", {}, name), el("td", { class: "state" }, s.state),
      el("td", {}, s.pid ? `pid ${s.pid}` : ""), el("td", {}, s.version || ""));
  }));
}

const format = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : String(v));

// One table row per device ever seen; unplugged ones stay, greyed, until reload.
export class DeviceTable {
  constructor(tbody, { onAlias, onPlot, canEdit }) {
    this.tbody = tbody;
    this.onAlias = onAlias;
    this.onPlot = onPlot;
    this.canEdit = canEdit;
    this.devices = new Map(); // uid -> {info, values, row, cells, plugged}
    this.aliases = {}; // name -> uid
    this.plotted = new Set(); // "uid/param"
  }

  info(uid, info) {
    let device = this.devices.get(uid);
    if (!info) {
      if (device) {
        device.plugged = false;
        device.row.dataset.plugged = "false";
        device.row.querySelector(".type").textContent = `${device.info.type} (unplugged)`;
      }
      return;
    }
    if (!device) {
      device = { info, values: {}, cells: {}, plugged: true };
      this.devices.set(uid, device);
    }
    device.info = info;
    device.plugged = true;
    this._render(uid, device);
  }

  // New values; ``initial`` ones (a snapshot) never overwrite a value already seen live.
  data(uid, data, initial = false) {
    const device = this.devices.get(uid);
    if (!device || !data || !data.params) return;
    for (const [name, value] of Object.entries(data.params)) {
      if (initial && name in device.values) continue;
      device.values[name] = value;
      const cell = device.cells[name];
      if (cell) cell.textContent = format(value);
    }
  }

  setAliases(aliases) {
    this.aliases = aliases || {};
    for (const [uid, device] of this.devices) {
      const input = device.row && device.row.querySelector("input.alias");
      if (input && document.activeElement !== input) input.value = this.aliasOf(uid);
    }
  }

  aliasOf(uid) {
    return Object.keys(this.aliases).find((name) => this.aliases[name] === uid) || "";
  }

  value(uid, param) {
    const device = this.devices.get(uid);
    return device ? device.values[param] : undefined;
  }

  _render(uid, device) {
    const { info } = device;
    const alias = el("input", { class: "alias", size: "10", placeholder: "alias", "data-control": "" });
    alias.value = this.aliasOf(uid);
    alias.disabled = !this.canEdit();
    alias.addEventListener("change", () => this.onAlias(uid, this.aliasOf(uid), alias.value.trim()));
    const values = el("div", { class: "values" });
    device.cells = {};
    for (const param of info.params || []) {
      if (!param.readable) continue;
      const key = `${uid}/${param.name}`;
      const cell = el("span", { class: "value", "data-param": param.name },
        format(device.values[param.name] ?? "–"));
      device.cells[param.name] = cell;
      const box = el("input", { type: "checkbox", title: "plot", "data-plot": key });
      box.checked = this.plotted.has(key);
      box.addEventListener("change", () => {
        if (box.checked) this.plotted.add(key);
        else this.plotted.delete(key);
        this.onPlot([...this.plotted]);
      });
      values.append(el("label", { class: "param" }, box, ` ${param.name} `, cell));
    }
    const row = el("tr", { "data-uid": uid, "data-plugged": "true" },
      el("td", { class: "type" }, info.type), el("td", { class: "uid" }, uid), el("td", {}, alias),
      el("td", {}, values));
    if (device.row) device.row.replaceWith(row);
    else this.tbody.append(row);
    device.row = row;
  }
}

// Chosen params over the last 30 s, sampled from the live values at 10 Hz.
export class Plot {
  constructor(container, table) {
    this.container = container;
    this.table = table;
    this.keys = [];
    this.t = [];
    this.series = [];
    this.uplot = null;
    setInterval(() => this.sample(), 100);
  }

  setKeys(keys) {
    this.keys = keys;
    this.t = [];
    this.series = keys.map(() => []);
    if (this.uplot) this.uplot.destroy();
    this.uplot = null;
    if (!keys.length) return;
    const width = Math.max(300, this.container.clientWidth - 10);
    this.uplot = new uPlot({
      width, height: 220,
      scales: { x: { time: true } },
      series: [{}, ...keys.map((key, i) => ({
        label: this.label(key), stroke: `hsl(${(i * 67) % 360} 70% 45%)`, width: 1.5,
      }))],
    }, [this.t, ...this.series], this.container);
  }

  label(key) {
    const [uid, param] = key.split("/");
    return `${this.table.aliasOf(uid) || uid.slice(-6)} ${param}`;
  }

  sample() {
    if (!this.uplot) return;
    const now = Date.now() / 1000;
    this.t.push(now);
    this.keys.forEach((key, i) => {
      const [uid, param] = key.split("/");
      const v = this.table.value(uid, param);
      this.series[i].push(typeof v === "boolean" ? Number(v) : (typeof v === "number" ? v : null));
    });
    while (this.t.length && this.t[0] < now - 30) {
      this.t.shift();
      this.series.forEach((s) => s.shift());
    }
    this.uplot.setData([this.t, ...this.series]);
  }
}

// The student console: records in order of their timestamps, errors highlighted, every
// "line N" a link into the editor.
export class Console {
  constructor(list, { onLine, max = 500 }) {
    this.list = list;
    this.onLine = onLine;
    this.max = max;
  }

  add(record) {
    if (!record) return;
    const level = String(record.level || "INFO").toUpperCase();
    const message = String(record.message ?? "");
    const item = el("li", { class: `log ${level.toLowerCase()}`, "data-ts": String(record.ts || 0) });
    const line = record.context && Number.isInteger(record.context.line) ? record.context.line : null;
    let last = 0;
    const pattern = /\bline (\d+)/g;
    for (let m = pattern.exec(message); m; m = pattern.exec(message)) {
      item.append(message.slice(last, m.index));
      item.append(this.link(m[0], Number(m[1])));
      last = m.index + m[0].length;
    }
    item.append(message.slice(last));
    if (line !== null && last === 0) item.append(" ", this.link(`(line ${line})`, line));
    // Records come in order; one delayed by the network is put back in its place.
    let before = null;
    const ts = Number(record.ts || 0);
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.ts) <= ts) break;
      before = node;
    }
    this.list.insertBefore(item, before);
    while (this.list.childElementCount > this.max) this.list.firstElementChild.remove();
    if (!before) this.list.scrollTop = this.list.scrollHeight;
  }

  link(text, line) {
    return el("a", { href: `#line-${line}`, class: "line-link", "data-line": String(line),
      onclick: (event) => { event.preventDefault(); this.onLine(line); } }, text);
  }
}
