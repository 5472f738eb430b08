import 'reflect-metadata';
import { BadRequestException } from '@nestjs/common';
import { CreateTasksBatchDto } from './dto/create-tasks-batch.dto';
import { RequestBodyPipe } from './request-body.pipe';
import { CreateTaskDto } from '../tasks/dto/create-task.dto';

describe(RequestBodyPipe.name, () => {
  const pipe = new RequestBodyPipe({ maxDataDepth: 4, maxDataKeys: 5 });
  const body = (metatype: new () => object, json: string) =>
    pipe.transform(JSON.parse(json), { type: 'body', metatype });
  const problems = async (promise: Promise<unknown>): Promise<unknown> => {
    const error: unknown = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BadRequestException);
    return ((error as BadRequestException).getResponse() as { message: unknown }).message;
  };

  it('hands the DTO the very data object it was sent, not a copy class-transformer made', async () => {
    const raw = JSON.parse('{"action":"a","data":{"x":{"y":[1,2]}}}') as { data: object };
    const dto = (await pipe.transform(raw, {
      type: 'body',
      metatype: CreateTaskDto,
    })) as CreateTaskDto;
    expect(dto).toBeInstanceOf(CreateTaskDto);
    expect(dto.data).toBe(raw.data);
  });

  it('puts back each batch item its own data', async () => {
    const dto = (await body(
      CreateTasksBatchDto,
      '{"tasks":[{"action":"a","data":{"n":1}},{"action":"b"},{"action":"c","data":{"n":3}}]}',
    )) as CreateTasksBatchDto;
    expect(dto.tasks.map((t) => t.data)).toEqual([{ n: 1 }, undefined, { n: 3 }]);
    expect(dto.tasks[0]).toBeInstanceOf(CreateTaskDto);
  });

  it('refuses keys the DTO does not declare, Object.prototype names included', async () => {
    expect(
      await problems(body(CreateTaskDto, '{"action":"a","__proto__":{"x":1},"constructor":1}')),
    ).toEqual(['property __proto__ should not exist', 'property constructor should not exist']);
  });

  it('refuses null data, deep data, too many keys, and deep values elsewhere', async () => {
    expect(await problems(body(CreateTaskDto, '{"action":"a","data":null}'))).toEqual([
      'data must be an object',
    ]);
    expect(
      await problems(body(CreateTaskDto, '{"action":"a","data":{"a":{"b":{"c":{"d":{}}}}}}')),
    ).toEqual(['data is nested deeper than 4 levels (MAX_DATA_DEPTH)']);
    expect(
      await problems(
        body(CreateTaskDto, '{"action":"a","data":{"a":1,"b":2,"c":{"d":3,"e":4,"f":5}}}'),
      ),
    ).toEqual(['data has more than 5 keys (MAX_DATA_KEYS)']);
    expect(await problems(body(CreateTasksBatchDto, '{"tasks":[[[[[[1]]]]]]}'))).toEqual([
      'tasks.0 is nested deeper than 4 levels (MAX_DATA_DEPTH)',
    ]);
  });

  it('leaves query parameters to the ValidationPipe it extends', async () => {
    const query = await pipe.transform({ x: '1' }, { type: 'query', metatype: Object });
    expect(query).toEqual({ x: '1' });
  });
});
