import { join } from 'node:path';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';

/** `open` brackets nested `depth` deep around `inner`, as raw JSON (no recursion to build it). */
const nested = (open: '[' | '{"a":', depth: number, inner = '1'): string =>
  open.repeat(depth) + inner + (open === '[' ? ']' : '}').repeat(depth);

/** An object of `n` tiny keys, as raw JSON (96,000 of them fit in 1 MiB). */
const manyKeys = (n: number): string =>
  `{${Array.from({ length: n }, (_, i) => `"${i.toString(36)}":0`).join(',')}}`;

const badRequest = (message: unknown) => ({ statusCode: 400, error: 'Bad Request', message });

/** The request rules README "Bad input" states, on both HTTP adapters. */
describe.each(['express', 'fastify'] as const)('request input on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ adapter, dbPath: join(dir.path, 'tasks.db') });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  /** POSTs `json` exactly as written (keys such as __proto__ survive only this way). */
  const postRaw = (path: string, json: string) =>
    t.http.post(path).set('Content-Type', 'application/json').send(json);

  describe('fields', () => {
    it('refuses data: null (omit data for {})', async () => {
      const res = await postRaw('/tasks', '{"action":"uppercase","data":null}').expect(400);
      expect(res.body).toEqual(badRequest(['data must be an object']));
    });

    it.each(['constructor', '__proto__', 'prototype', 'toString', 'hasOwnProperty'])(
      'refuses an unknown top-level field named %s, in a batch item too',
      async (name) => {
        const extra = `"${name}":{"prototype":{"x":1}}`;
        const one = await postRaw(
          '/tasks',
          `{"action":"uppercase","data":{"text":"x"},${extra}}`,
        ).expect(400);
        expect(one.body).toEqual(badRequest([`property ${name} should not exist`]));
        const batch = await postRaw(
          '/tasks/batch',
          `{"tasks":[{"action":"uppercase","data":{"text":"x"},${extra}}]}`,
        ).expect(400);
        expect(batch.body).toEqual(badRequest([`tasks.0.property ${name} should not exist`]));
      },
    );

    it('refuses handler data that misses a required field, naming it', async () => {
      const res = await postRaw('/tasks', '{"action":"uppercase","data":{}}').expect(400);
      expect(res.body).toEqual(badRequest(['data.text must be a string']));
      const none = await postRaw('/tasks', '{"action":"sum"}').expect(400);
      expect(none.body.message).toContain('data.numbers must be an array');
      const batch = await postRaw('/tasks/batch', '{"tasks":[{"action":"uppercase"}]}').expect(400);
      expect(batch.body).toEqual(badRequest(['tasks.0.data.text must be a string']));
    });

    it('refuses a batch item that is not an object (it once reached the insert: 500)', async () => {
      const res = await postRaw('/tasks/batch', '{"tasks":[[]]}').expect(400);
      expect(res.body.message).toEqual(['each value in tasks must be an object']);
    });

    it("keeps a typed handler's extra data keys and stores data exactly as sent", async () => {
      const data = { text: 'x', extra: { list: [1, { deep: true }], n: null } };
      const res = await t.http.post('/tasks').send({ action: 'uppercase', data }).expect(202);
      expect((await t.http.get(`/tasks/${res.body.id}`).expect(200)).body.data).toEqual(data);
    });

    it('refuses a schedule whose data is null or too deep', async () => {
      const base = '"name":"input-check","action":"uppercase","every":"1h"';
      const nul = await postRaw('/schedules', `{${base},"data":null}`).expect(400);
      expect(nul.body.message).toEqual(['data must be an object']);
      const deep = await postRaw('/schedules', `{${base},"data":${nested('{"a":', 100)}}`).expect(
        400,
      );
      expect(deep.body.message).toEqual(['data is nested deeper than 32 levels (MAX_DATA_DEPTH)']);
    });
  });

  describe('size and depth bounds (answered before anything walks the body)', () => {
    it.each([
      ['arrays 2,000 deep', `{"action":"noop","data":{"a":${nested('[', 2000)}}}`, 'data'],
      ['objects 3,000 deep', `{"action":"noop","data":${nested('{"a":', 3000)}}`, 'data'],
      ['a field other than data', `{"action":${nested('[', 5000)}}`, 'action'],
    ])('data nested too deep: %s', async (_case, json, field) => {
      const res = await postRaw('/tasks', json).expect(400);
      expect(res.body).toEqual(
        badRequest([`${field} is nested deeper than 32 levels (MAX_DATA_DEPTH)`]),
      );
    });

    it('a batch item nested 10,000 deep, and a deep data in a batch item', async () => {
      const item = await postRaw('/tasks/batch', `{"tasks":[${nested('[', 10_000)}]}`).expect(400);
      expect(item.body).toEqual(
        badRequest(['tasks.0 is nested deeper than 32 levels (MAX_DATA_DEPTH)']),
      );
      const data = await postRaw(
        '/tasks/batch',
        `{"tasks":[{"action":"noop"},{"action":"noop","data":${nested('{"a":', 10_000)}}]}`,
      ).expect(400);
      expect(data.body).toEqual(
        badRequest(['tasks.1.data is nested deeper than 32 levels (MAX_DATA_DEPTH)']),
      );
    });

    it('accepts data exactly MAX_DATA_DEPTH deep', async () => {
      // data itself is the first level.
      await postRaw('/tasks', `{"action":"noop","data":${nested('{"a":', 32)}}`).expect(202);
      await postRaw('/tasks', `{"action":"noop","data":${nested('{"a":', 33)}}`).expect(400);
    });

    it('bounds the keys of data (MAX_DATA_KEYS, at every level)', async () => {
      const tooMany = await postRaw(
        '/tasks',
        `{"action":"noop","data":{"a":${manyKeys(6000)},"b":${manyKeys(6000)}}}`,
      ).expect(400);
      expect(tooMany.body).toEqual(badRequest(['data has more than 10000 keys (MAX_DATA_KEYS)']));
      const typed = await postRaw(
        '/tasks',
        `{"action":"uppercase","data":{"text":"x","more":${manyKeys(96_000)}}}`,
      ).expect(400);
      expect(typed.body).toEqual(badRequest(['data has more than 10000 keys (MAX_DATA_KEYS)']));
    });

    it('stores a data of many keys within the bound intact, typed or not', async () => {
      const json = manyKeys(9_000);
      for (const body of [
        `{"action":"noop","data":${json}}`,
        `{"action":"uppercase","data":{"text":"x","more":${manyKeys(8_000)}}}`,
      ]) {
        const res = await postRaw('/tasks', body).expect(202);
        const task = (await t.http.get(`/tasks/${res.body.id}`).expect(200)).body;
        expect(task.data).toEqual(JSON.parse(body).data);
      }
    });

    it('answers a body over MAX_BODY_BYTES with 413 JSON', async () => {
      const res = await postRaw(
        '/tasks',
        `{"action":"noop","data":{"s":"${'x'.repeat(1024 * 1024)}"}}`,
      ).expect(413);
      expect(res.body).toEqual({
        statusCode: 413,
        error: 'Payload Too Large',
        message: 'request body is larger than 1048576 bytes (MAX_BODY_BYTES)',
      });
    });
  });

  describe('Content-Type', () => {
    const unsupported = {
      statusCode: 415,
      error: 'Unsupported Media Type',
      message: 'Content-Type must be application/json',
    };

    it.each([
      ['missing', undefined],
      ['form-encoded (curl -d without -H)', 'application/x-www-form-urlencoded'],
      ['text/plain', 'text/plain'],
    ])('a body whose Content-Type is %s gets one clear 415', async (_case, type) => {
      const req = t.http.post('/tasks');
      // A Buffer body: supertest then adds no Content-Type of its own.
      const res = await (type ? req.set('Content-Type', type) : req)
        .send(Buffer.from('{"action":"uppercase","data":{"text":"x"}}'))
        .expect(415);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual(unsupported);
    });

    it('accepts application/json with a charset, and a bodiless POST without one', async () => {
      await t.http
        .post('/tasks')
        .set('Content-Type', 'application/json; charset=utf-8')
        .send('{"action":"noop"}')
        .expect(202);
      const { id } = (await postRaw('/tasks', '{"action":"noop","delayMs":60000}')).body;
      await t.http.post(`/tasks/${id}/cancel`).expect(200);
    });
  });

  it('GET /tasks/events refuses a taskId that is not a UUID', async () => {
    const res = await t.http.get('/tasks/events?taskId=not-a-uuid').expect(400);
    expect(res.body).toEqual(badRequest(['taskId must be a UUID']));
  });
});
