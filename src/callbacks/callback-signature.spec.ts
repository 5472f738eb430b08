import { createHmac } from 'node:crypto';
import { signCallbackBody, verifyCallbackSignature } from './callback-signature';

describe(signCallbackBody.name, () => {
  it('is sha256= and the hex HMAC-SHA256 of the exact body', () => {
    const body = '{"id":"1","status":"completed"}';
    const expected = createHmac('sha256', 's3cret').update(body).digest('hex');
    expect(signCallbackBody(body, 's3cret')).toBe(`sha256=${expected}`);
  });

  it('verifies its own signature and nothing else', () => {
    const body = Buffer.from('{"ok":true}');
    const signature = signCallbackBody(body, 'key');
    expect(verifyCallbackSignature(body, 'key', signature)).toBe(true);
    expect(verifyCallbackSignature('{"ok":false}', 'key', signature)).toBe(false);
    expect(verifyCallbackSignature(body, 'other key', signature)).toBe(false);
    expect(verifyCallbackSignature(body, 'key', 'sha256=00')).toBe(false);
    expect(verifyCallbackSignature(body, 'key', undefined)).toBe(false);
  });
});
