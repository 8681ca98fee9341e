// Test helpers shared by the client tests: a WebSocket class whose tests play the server, and the
// binary frame layout. Not a test file itself (node --test picks *.test.mjs).

/** A fresh FakeWebSocket class (its own `instances`), to pass as the client's `WebSocket` option. */
export function fakeWebSocketClass() {
  return class FakeWebSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.binaryType = "blob";
      this.sent = [];
      this.closedWith = null;
      FakeWebSocket.instances.push(this);
    }
    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      this.sent.push(JSON.parse(data));
    }
    close(code = 1000, reason = "") {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // --- the server's side ---
    open() {
      this.readyState = 1;
      this.onopen && this.onopen({});
    }
    receive(data) {
      this.onmessage && this.onmessage({ data });
    }
    receiveJSON(obj) {
      this.receive(JSON.stringify(obj));
    }
    serverClose(code = 1006, reason = "") {
      this.readyState = 3;
      this.onclose && this.onclose({ code, reason, wasClean: code !== 1006 });
    }
    sentOfType(type) {
      return this.sent.filter((m) => m.type === type);
    }
  };
}

/** `| uint32 BE header length | JSON header | payload |`, as the server sends frames. */
export function binaryMessage(header, payload = new Uint8Array([0xff, 0xd8, 0xff, 0xd9])) {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const buf = new ArrayBuffer(4 + h.byteLength + payload.byteLength);
  new DataView(buf).setUint32(0, h.byteLength, false);
  new Uint8Array(buf, 4).set(h);
  new Uint8Array(buf, 4 + h.byteLength).set(payload);
  return buf;
}
