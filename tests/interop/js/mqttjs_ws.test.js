// MQTT.js over Pigeon's WebSocket and WebSocket-over-TLS listeners (the way
// browsers and mini-programs connect), in MQTT 3.1.1 and 5.0, heard by a
// subscriber on plain TCP. Certificates are made with the openssl command;
// the broker is started with a [[listeners]] config and stopped by PID.
const { test, before, after } = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const mqtt = require('mqtt');
const { freePort, waitForPort } = require('./helpers');

const root = path.resolve(__dirname, '..', '..', '..');
const bin = process.env.PIGEON_BIN || path.join(root, 'target', 'debug', 'pigeon');
let broker;
let dir;
const ports = {};

function certificates(d) {
  const run = (...args) => execFileSync('openssl', args, { cwd: d, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=pigeon js CA');
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(d, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pigeon-js-ws-'));
  certificates(dir);
  for (const name of ['mqtt', 'ws', 'wss']) ports[name] = await freePort();
  const config = path.join(dir, 'pigeon.toml');
  fs.writeFileSync(config, `listen = "127.0.0.1:${ports.mqtt}"
data_dir = "${dir}/data"

[[listeners]]
address = "127.0.0.1:${ports.ws}"
protocol = "websocket"

[[listeners]]
address = "127.0.0.1:${ports.wss}"
protocol = "websocket"
certfile = "${dir}/server.pem"
keyfile = "${dir}/server.key"
`);
  broker = spawn(bin, ['broker', '-c', config], { stdio: 'ignore' });
  for (const p of Object.values(ports)) await waitForPort(p);
});

after(() => {
  broker.kill('SIGTERM');
  broker.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
});

function connect(url, protocolVersion, extra = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion, reconnectPeriod: 0, ...extra });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

for (const version of [4, 5]) {
  for (const scheme of ['ws', 'wss']) {
    test(`MQTT.js v${version === 4 ? '3.1.1' : '5'} over ${scheme}:// reaches a TCP subscriber and back`, async () => {
      const extra = scheme === 'wss' ? { ca: fs.readFileSync(path.join(dir, 'ca.pem')) } : {};
      const web = await connect(`${scheme}://localhost:${ports[scheme]}/mqtt`, version, extra);
      const tcp = await connect(`mqtt://127.0.0.1:${ports.mqtt}`, version);
      await web.subscribeAsync(`js/${scheme}/down`, { qos: 1 });
      await tcp.subscribeAsync(`js/${scheme}/up`, { qos: 1 });
      const up = new Promise((resolve) => tcp.once('message', (t, p) => resolve(p.toString())));
      const down = new Promise((resolve) => web.once('message', (t, p) => resolve(p.toString())));
      await web.publishAsync(`js/${scheme}/up`, 'from the browser side', { qos: 1 });
      await tcp.publishAsync(`js/${scheme}/down`, 'x'.repeat(100000), { qos: 2 });
      assert.strictEqual(await up, 'from the browser side');
      assert.strictEqual((await down).length, 100000);
      await web.endAsync();
      await tcp.endAsync();
    });
  }
}
