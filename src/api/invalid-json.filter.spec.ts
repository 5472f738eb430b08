import { HttpException, HttpStatus, NotFoundException } from '@nestjs/common';
import { withReason } from './invalid-json.filter';

describe(withReason.name, () => {
  it('adds the reason phrase to a {statusCode, message} body (the throttler 429)', () => {
    const error = new HttpException(
      { statusCode: 429, message: 'ThrottlerException: Too Many Requests' },
      HttpStatus.TOO_MANY_REQUESTS,
    );
    expect(withReason(error).getResponse()).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: 'ThrottlerException: Too Many Requests',
    });
  });

  it('wraps a bare message', () => {
    expect(withReason(new HttpException('nope', 403)).getResponse()).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      message: 'nope',
    });
  });

  it('leaves complete error bodies and bodies of another shape alone', () => {
    const complete = new NotFoundException('task x not found');
    expect(withReason(complete)).toBe(complete);
    const health = new HttpException({ status: 'error', database: 'up', queue: 'down' }, 503);
    expect(withReason(health)).toBe(health);
  });
});
