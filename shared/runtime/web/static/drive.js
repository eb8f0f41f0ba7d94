// Driving: the browser Gamepad API and the keyboard, into input/gamepad/<slot> and
// input/keyboard (sent on every change and at least every 100 ms, as the contract asks).
//
// The standard gamepad mapping has the contract's 17 buttons in the contract's order
// (A B X Y, bumpers, triggers, back, start, stick clicks, d-pad, home). Its Y axes point
// down; Runtime's point up (as `runtime drive`: W is +1), so Y axes are negated here.

export const BUTTONS = [
  "button_a", "button_b", "button_x", "button_y", "l_bumper", "r_bumper", "l_trigger",
  "r_trigger", "button_back", "button_start", "l_stick", "r_stick", "dpad_up", "dpad_down",
  "dpad_left", "dpad_right", "button_xbox",
];
// Bit order of the keyboard bitmap (device catalog; runtime.buffer.inputs.KEYS).
export const KEYS = [
  ..."abcdefghijklmnopqrstuvwxyz", ..."1234567890", ",", ".", "/", ";", "'", "[", "]",
  "left_arrow", "right_arrow", "up_arrow", "down_arrow",
];
const ARROWS = { ArrowLeft: "left_arrow", ArrowRight: "right_arrow", ArrowUp: "up_arrow", ArrowDown: "down_arrow" };
const BUTTON_KEYS = { j: "button_a", k: "button_b", l: "button_x", i: "button_y" };
export const POLL_MS = 5; // gamepads are polled (the API has no change events)
export const REPEAT_MS = 100; // the contract: at least every 100 ms
const DEADZONE = 0.02;

export function keyName(event) {
  return ARROWS[event.key] || (event.key.length === 1 ? event.key.toLowerCase() : null);
}

export class Driver {
  // send(topic, payload) publishes; onPad(pad, source) draws; active() says whether to send.
  constructor({ send, onPad, active }) {
    this.send = send;
    this.onPad = onPad;
    this.active = active;
    this.slot = 0;
    this.held = new Set();
    this.last = { pad: "", keys: "" };
    this.lastSent = 0;
    this.sending = false;
    this.source = "keyboard";
    this.timer = setInterval(() => this.tick(), POLL_MS);
  }

  setSlot(slot) {
    if (slot === this.slot) return;
    this.release(); // the old slot's input is gone
    this.slot = slot;
  }

  press(key) {
    if (key && (KEYS.includes(key) || key in BUTTON_KEYS)) this.held.add(key);
  }

  unpress(key) {
    this.held.delete(key);
  }

  // The first connected gamepad ("standard" mapping preferred).
  gamepad() {
    const pads = Array.from((navigator.getGamepads && navigator.getGamepads()) || []).filter(Boolean);
    return pads.find((p) => p.connected !== false && p.mapping === "standard")
      || pads.find((p) => p.connected !== false) || null;
  }

  read() {
    const axis = (plus, minus) => (this.held.has(plus) ? 1 : 0) - (this.held.has(minus) ? 1 : 0);
    const axes = [axis("d", "a"), axis("w", "s"), axis("right_arrow", "left_arrow"), axis("up_arrow", "down_arrow")];
    let buttons = 0;
    for (const [key, name] of Object.entries(BUTTON_KEYS)) {
      if (this.held.has(key)) buttons |= 1 << BUTTONS.indexOf(name);
    }
    const pad = this.gamepad();
    this.source = pad ? `gamepad "${pad.id}"` : "keyboard";
    if (pad) {
      pad.buttons.slice(0, BUTTONS.length).forEach((b, i) => {
        if (b && (b.pressed || b.value > 0.5)) buttons |= 1 << i;
      });
      for (let i = 0; i < 4; i++) {
        let value = Number(pad.axes[i] || 0) * (i % 2 ? -1 : 1);
        if (Math.abs(value) < DEADZONE) value = 0;
        if (Math.abs(value) > Math.abs(axes[i])) axes[i] = Math.max(-1, Math.min(1, value));
      }
    }
    let keys = 0n;
    for (const key of this.held) {
      const bit = KEYS.indexOf(key);
      if (bit >= 0) keys |= 1n << BigInt(bit);
    }
    return { buttons: buttons >>> 0, axes, keys };
  }

  tick() {
    const input = this.read();
    this.onPad(input, this.source);
    if (!this.active()) {
      if (this.sending) this.release();
      return;
    }
    const now = performance.now();
    const pad = `${input.buttons}|${input.axes.join(",")}`;
    const keys = input.keys.toString();
    const due = now - this.lastSent >= REPEAT_MS;
    if (!this.sending || due || pad !== this.last.pad || keys !== this.last.keys) {
      const ts = (performance.timeOrigin + now) / 1000;
      this.send(`input/gamepad/${this.slot}`, { buttons: input.buttons, axes: input.axes, ts });
      // CBOR integers: a 64-bit bitmap must not lose bits as a float.
      this.send("input/keyboard", { keys: input.keys <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(input.keys) : input.keys, ts });
      this.last = { pad, keys };
      this.lastSent = now;
      this.sending = true;
    }
  }

  // Stop sending: an empty payload says "this input is gone", so teleop stops the motors now
  // (the robot's no-input rule would also stop them 500 ms after the last message).
  release() {
    if (this.sending) {
      this.send(`input/gamepad/${this.slot}`, null, 1);
      this.send("input/keyboard", null, 1);
    }
    this.sending = false;
    this.held.clear();
    this.last = { pad: "", keys: "" };
  }
}
