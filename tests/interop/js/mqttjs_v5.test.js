// MQTT.js (protocolVersion 5) against Pigeon: enhanced authentication with
// SCRAM-SHA-256 through MQTT.js's handleAuth (MQTT-4.12.0-2, -3, -5), shared
// subscriptions (§4.8.2) and user properties (MQTT-3.3.2-17). Starts
// `pigeon broker` with a SCRAM users file made by `pigeon passwd --scram`.
const { test, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const mqtt = require('mqtt');
const { freePort, waitForPort } = require('./helpers');

const root = path.resolve(__dirname, '..', '..', '..');
const bin = process.env.PIGEON_BIN || path.join(root, 'target', 'debug', 'pigeon');
const METHOD = 'SCRAM-SHA-256';
let broker;
let port;
let dir;

before(async () => {
  port = await freePort();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pigeon-js5-'));
  const users = path.join(dir, 'scram');
  execFileSync(bin, ['passwd', '--scram', '-b', users, 'alice', 'wonderland']);
  const config = path.join(dir, 'pigeon.toml');
  fs.writeFileSync(config, `scram_users_file = ${JSON.stringify(users)}\n`);
  broker = spawn(bin, ['broker', '-c', config, '-p', String(port), '--data-dir', path.join(dir, 'data')],
    { stdio: 'ignore' });
  await waitForPort(port);
});

after(() => {
  broker.kill('SIGTERM');
  broker.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
});

// The client half of SCRAM-SHA-256 (RFC 5802), with node's crypto.
function scramClient(user, password) {
  const bare = `n=${user},r=${crypto.randomBytes(18).toString('base64')}`;
  const client = {
    first: Buffer.from(`n,,${bare}`),
    expected: null,
    final(serverFirst) {
      const sf = serverFirst.toString();
      const attrs = Object.fromEntries(sf.split(',').map((p) => [p[0], p.slice(2)]));
      const salted = crypto.pbkdf2Sync(password, Buffer.from(attrs.s, 'base64'), Number(attrs.i), 32, 'sha256');
      const clientKey = crypto.createHmac('sha256', salted).update('Client Key').digest();
      const storedKey = crypto.createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.r}`;
      const authMessage = `${bare},${sf},${withoutProof}`;
      const signature = crypto.createHmac('sha256', storedKey).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
      const serverKey = crypto.createHmac('sha256', salted).update('Server Key').digest();
      client.expected = `v=${crypto.createHmac('sha256', serverKey).update(authMessage).digest('base64')}`;
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
    },
  };
  return client;
}

// Connects with SCRAM; resolves with [client, connack], rejects on refusal.
function scramConnect(user, password) {
  const scram = scramClient(user, password);
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({
      host: '127.0.0.1', port, protocolVersion: 5, reconnectPeriod: 0,
      properties: { authenticationMethod: METHOD, authenticationData: scram.first },
    });
    c.handleAuth = (packet, callback) => {
      const data = scram.final(packet.properties.authenticationData);
      callback(null, {
        cmd: 'auth', reasonCode: 0x18,
        properties: { authenticationMethod: METHOD, authenticationData: data },
      });
    };
    c.once('connect', (connack) => resolve([c, connack, scram]));
    c.once('error', (e) => { c.end(true); reject(e); });
  });
}

function connect(clientId) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 5, reconnectPeriod: 0, clientId });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

test('SCRAM-SHA-256 through MQTT.js handleAuth: the broker proves it knows the secret', async () => {
  const [c, connack, scram] = await scramConnect('alice', 'wonderland');
  assert.strictEqual(connack.properties.authenticationMethod, METHOD);
  assert.strictEqual(connack.properties.authenticationData.toString(), scram.expected);
  await c.endAsync();
});

test('SCRAM-SHA-256 with the wrong password is refused with 0x87', async () => {
  await assert.rejects(scramConnect('alice', 'looking-glass'), (e) => e.code === 0x87);
});

test('a shared subscription gives each message to one MQTT.js member', async () => {
  const members = await Promise.all(['m1', 'm2'].map(connect));
  const got = members.map(() => []);
  members.forEach((m, i) => m.on('message', (_t, payload) => got[i].push(payload.toString())));
  await Promise.all(members.map((m) => m.subscribeAsync('$share/js/work', { qos: 1 })));
  const pub = await connect('boss');
  for (let n = 0; n < 6; n++) await pub.publishAsync('work', `w${n}`, { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepStrictEqual(got.map((g) => g.length), [3, 3]);
  assert.deepStrictEqual([...got[0], ...got[1]].sort(), ['w0', 'w1', 'w2', 'w3', 'w4', 'w5']);
  await Promise.all([...members, pub].map((c) => c.endAsync()));
});

test('user properties and correlation data reach an MQTT.js subscriber', async () => {
  const sub = await connect('s');
  const received = new Promise((resolve) => sub.once('message', (_t, _p, packet) => resolve(packet)));
  await sub.subscribeAsync('props', { qos: 1 });
  const pub = await connect('p');
  await pub.publishAsync('props', 'x', {
    qos: 1,
    properties: { userProperties: { a: '1', b: ['2', '3'] }, correlationData: Buffer.from('c-1'), responseTopic: 'r/1' },
  });
  const packet = await received;
  assert.deepStrictEqual({ ...packet.properties.userProperties }, { a: '1', b: ['2', '3'] });
  assert.strictEqual(packet.properties.correlationData.toString(), 'c-1');
  assert.strictEqual(packet.properties.responseTopic, 'r/1');
  await Promise.all([sub, pub].map((c) => c.endAsync()));
});
