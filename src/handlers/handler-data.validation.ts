import type { Type } from '@nestjs/common';
import { validate, type ValidationError } from 'class-validator';
import { dtoShape, isJsonObject, nestedDto } from '../common/dto-metadata';

/**
 * Checks a task's `data` against its handler's `dataType`; answers "data.field must be ..."
 * lines (nested fields included), none when it fits.
 *
 * The instance validated is built here rather than by class-transformer's plainToInstance,
 * which costs time quadratic in an object's key count: only the properties the type declares
 * are copied (so extra keys cost nothing), nested DTOs (`@Type(() => X)`) are built the same
 * way. Values are validated as sent: nothing is converted, because the handler receives the
 * stored JSON, not this instance. Depth is already bounded by the request pipe (MAX_DATA_DEPTH).
 */
export async function handlerDataProblems(
  dataType: Type<object>,
  data: Record<string, unknown>,
  prefix = 'data',
): Promise<string[]> {
  const errors = await validate(instantiate(dataType, data), { forbidUnknownValues: false });
  return flatten(errors, prefix);
}

function instantiate(type: Type<object>, plain: Record<string, unknown>): object {
  const instance = Object.create(type.prototype as object) as Record<string, unknown>;
  for (const property of dtoShape(type)?.properties ?? []) {
    if (!Object.hasOwn(plain, property)) continue;
    const value = plain[property];
    const nested = nestedDto(type, property);
    if (nested && Array.isArray(value)) {
      instance[property] = value.map((item: unknown) =>
        isJsonObject(item) ? instantiate(nested, item) : item,
      );
    } else if (nested && isJsonObject(value)) {
      instance[property] = instantiate(nested, value);
    } else {
      instance[property] = value;
    }
  }
  return instance;
}

/** class-validator errors as "data.field must be ..." lines, nested fields included. */
function flatten(errors: ValidationError[], prefix: string): string[] {
  return errors.flatMap((error) => {
    const path = `${prefix}.${error.property}`;
    const own = Object.values(error.constraints ?? {}).map((text) =>
      text.startsWith(error.property) ? `${prefix}.${text}` : `${path}: ${text}`,
    );
    return [...own, ...flatten(error.children ?? [], path)];
  });
}
