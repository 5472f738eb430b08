import { type ArgumentMetadata, BadRequestException, ValidationPipe } from '@nestjs/common';
import { checkJsonBounds, type JsonBoundsProblem } from './json-bounds';
import { dtoShape, isJsonObject, nestedDto } from '../common/dto-metadata';

export interface RequestBodyLimits {
  /** MAX_DATA_DEPTH: nesting allowed inside a free-form object, and inside any other field. */
  maxDataDepth: number;
  /** MAX_DATA_KEYS: object keys allowed in one free-form object, at every level. */
  maxDataKeys: number;
}

/** A free-form value taken out of the body before class-transformer, put back after. */
interface Detached {
  path: (string | number)[];
  value: Record<string, unknown>;
}

/**
 * The global validation pipe: Nest's ValidationPipe (whitelist, unknown fields refused,
 * transform) with the request body checked first, on the raw JSON:
 *
 * - the body must be a JSON object;
 * - every key must be a property the DTO declares. Checked here against a Set because
 *   class-validator's whitelist looks names up in a plain object, where `constructor` and
 *   `__proto__` are found on Object.prototype and slip through;
 * - no field is nested deeper than MAX_DATA_DEPTH, found without recursion, so nothing later
 *   overflows the stack (a 500);
 * - free-form objects (IsFreeFormObject, e.g. `data`) are bounded by MAX_DATA_KEYS and replaced
 *   by `{}` while class-transformer and class-validator run, then put back: class-transformer
 *   spends time quadratic in an object's key count (96k keys blocked the event loop for
 *   seconds), and a free-form object has nothing for it to convert.
 *
 * Nested DTOs (`@Type(() => X)` with X a DTO, e.g. a batch's tasks) get the same checks, with
 * messages prefixed by their path (`tasks.3.data ...`), as ValidationPipe names nested fields.
 */
export class RequestBodyPipe extends ValidationPipe {
  constructor(private readonly limits: RequestBodyLimits) {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      forbidUnknownValues: true,
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type !== 'body') return super.transform(value, metadata);
    if (!isJsonObject(value)) throw new BadRequestException('request body must be a JSON object');
    const type = metadata.metatype;
    if (!type || !dtoShape(type)) {
      // Not a DTO: only the depth bound applies, to the body as a whole.
      const problems: string[] = [];
      const body = this.bounded(value, 'request body', problems);
      if (problems.length > 0) throw new BadRequestException(problems);
      return super.transform(body, metadata);
    }
    const detached: Detached[] = [];
    const problems: string[] = [];
    const stripped = this.inspect(type, value, '', [], detached, problems);
    if (problems.length > 0) throw new BadRequestException(problems);
    const instance: unknown = await super.transform(stripped, metadata);
    for (const { path, value: original } of detached) restore(instance, path, original);
    return instance;
  }

  /** A copy of `body` that class-transformer may walk, or problems when it may not. */
  private inspect(
    type: object,
    body: Record<string, unknown>,
    prefix: string,
    path: (string | number)[],
    detached: Detached[],
    problems: string[],
  ): Record<string, unknown> {
    const shape = dtoShape(type)!;
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(body)) {
      if (!shape.properties.has(key)) {
        problems.push(`${prefix}property ${key} should not exist`);
        continue;
      }
      const value = body[key];
      const field = `${prefix}${key}`;
      if (shape.freeForm.has(key) && isJsonObject(value)) {
        const problem = checkJsonBounds(value, this.limits.maxDataDepth, this.limits.maxDataKeys);
        if (problem) problems.push(this.describe(field, problem));
        detached.push({ path: [...path, key], value });
        copy[key] = {};
        continue;
      }
      const nested = nestedDto(type, key);
      if (nested && Array.isArray(value)) {
        copy[key] = value.map((item: unknown, index) =>
          isJsonObject(item)
            ? this.inspect(
                nested,
                item,
                `${field}.${index}.`,
                [...path, key, index],
                detached,
                problems,
              )
            : this.bounded(item, `${field}.${index}`, problems),
        );
      } else if (nested && isJsonObject(value)) {
        copy[key] = this.inspect(nested, value, `${field}.`, [...path, key], detached, problems);
      } else {
        copy[key] = this.bounded(value, field, problems);
      }
    }
    return copy;
  }

  private bounded(value: unknown, field: string, problems: string[]): unknown {
    const problem = checkJsonBounds(value, this.limits.maxDataDepth);
    if (problem) problems.push(this.describe(field, problem));
    return value;
  }

  private describe(field: string, problem: JsonBoundsProblem): string {
    return problem === 'depth'
      ? `${field} is nested deeper than ${this.limits.maxDataDepth} levels (MAX_DATA_DEPTH)`
      : `${field} has more than ${this.limits.maxDataKeys} keys (MAX_DATA_KEYS)`;
  }
}

function restore(target: unknown, path: (string | number)[], value: unknown): void {
  let holder = target as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) holder = holder[step] as Record<string | number, unknown>;
  holder[path[path.length - 1]] = value;
}
