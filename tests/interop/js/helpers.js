// Shared by the MQTT.js tests: a free loopback port, and waiting until the
// broker listens on it.
const net = require('node:net');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function waitForPort(p) {
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(p, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`broker did not listen on ${p}`);
}

module.exports = { freePort, waitForPort };
