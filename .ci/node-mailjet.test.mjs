// node-mailjet (Mailjet's official Node client, pinned in package.json)
// against a running keydesk over HTTPS. Started by .ci/node-mailjet, which
// sets KD_HOST, KD_API_KEY, KD_SECRET and NODE_EXTRA_CA_CERTS (the test CA):
// exactly the settings a Mailjet user would make, and no other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Mailjet from 'node-mailjet';

const host = process.env.KD_HOST;
const apiKey = process.env.KD_API_KEY;
const apiSecret = process.env.KD_SECRET;
if (!host || !apiKey || !apiSecret) {
  throw new Error('run through .ci/node-mailjet (KD_HOST, KD_API_KEY, KD_SECRET)');
}
const client = (key, secret) => new Mailjet({ apiKey: key, apiSecret: secret, config: { host } });
const mj = client(apiKey, apiSecret);

// Fails unless the promise rejects with this HTTP status; returns the body.
async function rejects(promise, status) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.statusCode, status, `status ${err.statusCode}: ${JSON.stringify(err.response?.data)}`);
    return err.response.data;
  }
  assert.fail(`expected HTTP ${status}`);
}

let sub; // the sub-account key created below

test('list the keys, with countOnly, Sort and Limit', async () => {
  let { body } = await mj.get('apikey', { version: 'v3' }).request();
  assert.equal(body.Count, 1);
  assert.equal(body.Data[0].APIKey, apiKey);
  assert.equal(body.Data[0].IsMaster, true);
  assert.equal(body.Data[0].SecretKey, '');
  ({ body } = await mj.get('apikey', { version: 'v3' }).request({}, { countOnly: 1 }));
  assert.deepEqual([body.Count, body.Total, body.Data], [1, 1, []]);
  ({ body } = await mj.get('apikey', { version: 'v3' }).request({}, { Sort: 'ID DESC', Limit: 1 }));
  assert.equal(body.Count, 1);
  const bad = await rejects(mj.get('apikey', { version: 'v3' }).request({}, { Sort: 'Colour' }), 400);
  assert.match(bad.ErrorMessage, /Colour/);
});

test('create a sub-account key: the secret comes once', async () => {
  const { body } = await mj.post('apikey', { version: 'v3' }).request({ Name: 'node-stream' });
  assert.equal(body.Count, 1);
  sub = body.Data[0];
  assert.equal(sub.Name, 'node-stream');
  assert.equal(sub.IsMaster, false);
  assert.match(sub.SecretKey, /^kd_live_/);
});

test('get by ID and by API key, without the secret', async () => {
  for (const id of [sub.ID, sub.APIKey]) {
    const { body } = await mj.get('apikey', { version: 'v3' }).id(id).request();
    assert.equal(body.Data[0].APIKey, sub.APIKey);
    assert.equal(body.Data[0].SecretKey, '');
  }
  await rejects(mj.get('apikey', { version: 'v3' }).id(999999).request(), 404);
});

test('send a message with the Send API v3.1 and the sub-account key', async () => {
  const { body } = await client(sub.APIKey, sub.SecretKey).post('send', { version: 'v3.1' }).request({
    Messages: [{
      From: { Email: 'node@acme.example', Name: 'Node' },
      To: [{ Email: 'ana@example.com', Name: 'Ana' }],
      Subject: 'From node-mailjet',
      TextPart: 'Hello from node-mailjet',
      HTMLPart: '<p>Hello from <b>node-mailjet</b></p>',
      CustomID: 'node-1',
      Attachments: [{ ContentType: 'text/plain', Filename: 'note.txt', Base64Content: Buffer.from('note').toString('base64') }],
    }],
  });
  const m = body.Messages[0];
  assert.equal(m.Status, 'success');
  assert.equal(m.CustomID, 'node-1');
  assert.equal(m.To[0].Email, 'ana@example.com');
  assert.ok(Number(m.To[0].MessageID) > 0);
  assert.match(m.To[0].MessageUUID, /^[0-9a-f-]{36}$/);
  assert.match(m.To[0].MessageHref, /\/v3\/REST\/message\/\d+$/);
});

test('Send API v3.1 validation errors in Mailjet\'s shape', async () => {
  const body = await rejects(mj.post('send', { version: 'v3.1' }).request({
    Messages: [{ From: { Email: 'node@acme.example' }, To: [{ Email: 'not-an-address' }], TextPart: 'x' }],
  }), 400);
  const e = body.Messages[0].Errors[0];
  assert.equal(body.Messages[0].Status, 'error');
  assert.equal(e.ErrorCode, 'mj-0013');
  assert.deepEqual(e.ErrorRelatedTo, ['To[0].Email']);
  assert.ok(e.ErrorIdentifier);
});

test('rename, then deactivate: the key stops working', async () => {
  let { body } = await mj.put('apikey', { version: 'v3' }).id(sub.ID).request({ Name: 'node-renamed' });
  assert.equal(body.Data[0].Name, 'node-renamed');
  ({ body } = await mj.put('apikey', { version: 'v3' }).id(sub.APIKey).request({ IsActive: false }));
  assert.equal(body.Data[0].IsActive, false);
  await rejects(client(sub.APIKey, sub.SecretKey).get('apikey', { version: 'v3' }).request(), 401);
});

test('unsupported methods and bad input', async () => {
  await rejects(mj.delete('apikey', { version: 'v3' }).id(sub.ID).request(), 405);
  const master = await rejects(mj.put('apikey', { version: 'v3' }).id(apiKey).request({ IsActive: false }), 400);
  assert.match(master.ErrorMessage, /^IsActive: /);
});

test('bad credentials are a 401 in Mailjet\'s shape', async () => {
  const body = await rejects(client(apiKey, 'kd_live_wrong').get('apikey', { version: 'v3' }).request(), 401);
  assert.equal(body.StatusCode, 401);
  assert.match(body.ErrorMessage, /authentication/);
  await rejects(client(apiKey, 'kd_live_wrong').post('send', { version: 'v3.1' }).request({ Messages: [] }), 401);
});
