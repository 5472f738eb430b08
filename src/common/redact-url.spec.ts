import { redactUrl } from './redact-url';

describe(redactUrl.name, () => {
  it('redacts credentials', () => {
    expect(redactUrl('amqp://guest:guest@127.0.0.1:5672')).toBe('amqp://***@127.0.0.1:5672');
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('not a url with hunter2')).toBe('<url>');
  });
});
