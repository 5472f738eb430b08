import { newTask } from './task.factory';

describe('newTask', () => {
  const make = () => newTask({ action: 'a', data: {}, queue: 'q', maxAttempts: 3 });

  it('gives ids that sort in creation order, also within one millisecond', () => {
    // Time-ordered ids keep the primary-key and dedup indexes appending (see task.factory).
    const ids = Array.from({ length: 2000 }, () => make().id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('keeps an id it is given', () => {
    expect(newTask({ action: 'a', data: {}, queue: 'q', maxAttempts: 3, id: 'x' }).id).toBe('x');
  });
});
