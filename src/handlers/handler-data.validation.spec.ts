import 'reflect-metadata';
import { Type } from 'class-transformer';
import { IsInt, IsString, ValidateNested } from 'class-validator';
import { handlerDataProblems } from './handler-data.validation';

class Item {
  @IsInt()
  n!: number;
}

class Order {
  @IsString()
  name!: string;

  @ValidateNested({ each: true })
  @Type(() => Item)
  items!: Item[];
}

describe(handlerDataProblems.name, () => {
  it('names missing and wrong fields, nested ones by index', async () => {
    expect(await handlerDataProblems(Order, { items: [{ n: 1 }, { n: 'x' }] })).toEqual([
      'data.name must be a string',
      'data.items.1.n must be an integer number',
    ]);
  });

  it('accepts data that fits, whatever extra keys it carries, and converts nothing', async () => {
    const extra = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i]));
    expect(await handlerDataProblems(Order, { name: 'a', items: [], ...extra })).toEqual([]);
    expect(await handlerDataProblems(Item, { n: '5' })).toEqual([
      'data.n must be an integer number',
    ]);
  });

  it('prefixes the field as told (a batch item)', async () => {
    expect(await handlerDataProblems(Item, {}, 'tasks.2.data')).toEqual([
      'tasks.2.data.n must be an integer number',
    ]);
  });
});
