// MQTT.js against Pigeon over TCP: publish/subscribe at each QoS in MQTT
// 3.1.1 and 5.0. Starts `pigeon broker` on a free port and stops it by PID.
const { test, before, after } = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const mqtt = require('mqtt');
const { freePort, waitForPort } = require('./helpers');

const root = path.resolve(__dirname, '..', '..', '..');
const bin = process.env.PIGEON_BIN || path.join(root, 'target', 'debug', 'pigeon');
let broker;
let port;
let dataDir;

before(async () => {
  port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pigeon-js-'));
  broker = spawn(bin, ['broker', '-p', String(port), '--data-dir', dataDir], { stdio: 'ignore' });
  await waitForPort(port);
});

after(() => {
  broker.kill('SIGTERM');
  broker.once('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
});

function connect(protocolVersion) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, protocolVersion, reconnectPeriod: 0 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

for (const version of [4, 5]) {
  for (const qos of [0, 1, 2]) {
    test(`MQTT.js v${version === 4 ? '3.1.1' : '5'} QoS ${qos} publish reaches a subscriber`, async () => {
      const sub = await connect(version);
      await sub.subscribeAsync('js/+', { qos });
      const pub = await connect(version);
      const got = new Promise((resolve) => sub.once('message', (topic, payload, packet) => resolve({ topic, payload, packet })));
      await pub.publishAsync('js/x', `hello ${qos}`, { qos });
      const m = await got;
      assert.strictEqual(m.topic, 'js/x');
      assert.strictEqual(m.payload.toString(), `hello ${qos}`);
      assert.strictEqual(m.packet.qos, qos);
      await pub.endAsync();
      await sub.endAsync();
    });
  }
}
