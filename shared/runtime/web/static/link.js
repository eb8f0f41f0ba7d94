// The page's MQTT connection: topics of one robot, CBOR payloads, RPC with replies.
//
// The wire contract is Runtime's (docs/architecture.md, design.md): topics under
// runtime/<robot>/, CBOR maps, RPC requests {id, reply_to, args, kwargs} on
// rpc/<service>/<method>, replies on our own reply/<client_id>/ topic.
import { mqtt, Encoder, decode } from "./vendor/vendor.js";

// Plain maps in, plain maps out (no CBOR records, no typed arrays): what Python's cbor2 reads.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const encode = (value) => cbor.encode(value);

export class RPCError extends Error {
  constructor(message, type = "RPCError", context = {}) {
    super(message);
    this.type = type;
    this.context = context;
  }
}

// Why a CONNACK refused us, in words (MQTT 3.1.1 return codes).
const REFUSED = {
  1: "the broker does not speak this MQTT version",
  2: "the client id was refused",
  3: "the broker is unavailable",
  4: "wrong login or password",
  // Mosquitto and amqtt answer a wrong password with 5 too on MQTT 3.1.1.
  5: "wrong login or password, or this login may not connect",
};

export class Link extends EventTarget {
  // rpcAsLogin: executor requests of a login go to as/<login>/rpc/executor/<method>, the topic
  // the broker's ACL lets only that login write (the executor's authority comes from it).
  constructor({ url, robot, username = "", password = "", rpcAsLogin = false }) {
    super();
    this.rpcAsLogin = rpcAsLogin;
    this.url = url;
    this.robot = robot;
    this.prefix = `runtime/${robot}/`;
    this.username = username;
    this.clientId = `ds-${Math.random().toString(16).slice(2, 10)}`;
    this.replyTopic = `${this.prefix}reply/${this.clientId}`;
    this.pending = new Map();
    this.nextId = 1;
    this.handlers = [];
    this.connected = false;
    this.refused = null;
    this.client = mqtt.connect(url, {
      clientId: this.clientId,
      username: username || undefined,
      password: password || undefined,
      protocolVersion: 4, // the embedded broker (amqtt) speaks MQTT 3.1.1 only
      clean: true,
      keepalive: 5,
      reconnectPeriod: 2000,
      connectTimeout: 5000,
    });
    this.client.on("connect", () => this._connected());
    this.client.on("close", () => this._state(false));
    this.client.on("offline", () => this._state(false));
    this.client.on("error", (error) => this._error(error));
    this.client.on("message", (topic, payload) => this._message(topic, payload));
  }

  // Subscribe to a filter relative to the robot prefix; handler(topicLevels, value, raw).
  on(filter, handler) {
    const full = this.prefix + filter;
    this.handlers.push({ full, levels: full.split("/"), handler });
    if (this.connected) this._subscribe([full]);
  }

  publish(topic, value, { qos = 0, retain = false } = {}) {
    const payload = value === null ? new Uint8Array(0) : encode(value);
    return new Promise((resolve, reject) => {
      this.client.publish(this.prefix + topic, payload, { qos, retain }, (error) =>
        error ? reject(error) : resolve());
    });
  }

  // One RPC; resolves with the result, rejects with RPCError (service error, or no answer).
  call(service, method, args = [], kwargs = {}, timeout = 5000) {
    if (!this.connected) {
      return Promise.reject(new RPCError(`not connected to the robot: ${service}.${method} not sent`));
    }
    const id = `${this.clientId}-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RPCError(
          `no answer to ${service}.${method} within ${timeout / 1000} s: the service is down, ` +
          `or the broker dropped the request` +
          (this.username ? ` (may login "${this.username}" call it?)` : ""), "NoAnswer"));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      this.publish(this.requestTopic(service, method), { id, reply_to: this.replyTopic, args, kwargs },
        { qos: 1 }).catch((error) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new RPCError(`${service}.${method} not sent: ${error.message}`));
      });
    });
  }

  requestTopic(service, method) {
    const asLogin = this.rpcAsLogin && service === "executor" && this.username &&
      this.username !== "operator"; // a local operator's requests are the plain ones
    return `${asLogin ? `as/${this.username}/` : ""}rpc/${service}/${method}`;
  }

  close() {
    this.client.end(true);
  }

  _connected() {
    this.refused = null;
    this._state(true);
    // Subscriptions are not kept across a clean reconnect: ask again every time.
    this._subscribe([`${this.replyTopic}/#`, this.replyTopic, ...this.handlers.map((h) => h.full)]);
  }

  _subscribe(filters) {
    const unique = [...new Set(filters)];
    this.client.subscribe(unique, { qos: 1 }, (error, granted) => {
      if (error) {
        this._emit("problem", `subscribing failed: ${error.message}`);
        return;
      }
      const refused = (granted || []).filter((g) => g.qos === 128 && !g.topic.startsWith(this.replyTopic));
      if (refused.length) {
        this._emit("problem", `the broker refused to let this login read ${refused.map((g) => g.topic).join(", ")}`);
      }
    });
  }

  _state(connected) {
    if (this.connected === connected) return;
    this.connected = connected;
    this._emit("state", connected);
    if (!connected) {
      for (const [id, call] of this.pending) {
        clearTimeout(call.timer);
        call.reject(new RPCError("connection lost before the answer came"));
        this.pending.delete(id);
      }
    }
  }

  _error(error) {
    const code = error && error.code;
    if (REFUSED[code]) {
      this.refused = `The robot refused the login${this.username ? ` "${this.username}"` : ""}: ${REFUSED[code]}.`;
      this.client.end(true); // retrying a refused login only repeats the refusal
      this._emit("refused", this.refused);
    } else {
      this._emit("problem", `connection problem: ${error.message}`);
    }
  }

  _message(topic, payload) {
    if (topic.startsWith(this.replyTopic)) {
      this._reply(payload);
      return;
    }
    let value = null;
    if (payload.length) {
      try {
        value = decode(payload);
      } catch (error) {
        console.warn(`bad CBOR on ${topic}: ${error.message}`);
        return;
      }
    }
    const levels = topic.split("/");
    for (const h of this.handlers) {
      if (matches(h.levels, levels)) h.handler(levels.slice(2), value, payload);
    }
  }

  _reply(payload) {
    let reply;
    try {
      reply = decode(payload);
    } catch {
      return;
    }
    const call = this.pending.get(reply && reply.id);
    if (!call) return;
    this.pending.delete(reply.id);
    clearTimeout(call.timer);
    if (reply.ok) call.resolve(reply.result);
    else {
      const e = reply.error || {};
      call.reject(new RPCError(e.message || "the call failed", e.type, e.context || {}));
    }
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function matches(filter, topic) {
  for (let i = 0; i < filter.length; i++) {
    if (filter[i] === "#") return true;
    if (i >= topic.length || (filter[i] !== "+" && filter[i] !== topic[i])) return false;
  }
  return filter.length === topic.length;
}
