import { getMetadataStorage, ValidateBy, type ValidationOptions } from 'class-validator';

/** The constraint name that marks a free-form object property (see IsFreeFormObject). */
export const FREE_FORM_OBJECT = 'isFreeFormObject';

/** A JSON object: not null, not an array. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A property holding any JSON object (a task's `data`, a result): the request pipe checks its
 * size and depth and keeps it away from class-transformer, which walks every key of an object
 * in quadratic time and recurses without bound. `undefined` is allowed (the property is
 * optional); `null`, arrays and scalars are refused with "<property> must be an object".
 */
export function IsFreeFormObject(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: FREE_FORM_OBJECT,
      validator: {
        validate: (value: unknown) => value === undefined || isJsonObject(value),
        defaultMessage: () => '$property must be an object',
      },
    },
    options,
  );
}

interface DtoShape {
  /** Every property a validation decorator names: the whitelist of a request body. */
  properties: Set<string>;
  /** Properties marked IsFreeFormObject. */
  freeForm: Set<string>;
}

const shapes = new WeakMap<object, DtoShape>();

/**
 * What class-validator knows of `type`'s properties, or undefined when it knows none (not a
 * DTO). Read once per class. Inherited and mapped (PickType, ...) decorators are included.
 */
export function dtoShape(type: object): DtoShape | undefined {
  let shape = shapes.get(type);
  if (!shape) {
    const metadatas = getMetadataStorage().getTargetValidationMetadatas(
      type as new () => object,
      '',
      true,
      false,
    );
    shape = {
      properties: new Set(metadatas.map((m) => m.propertyName)),
      freeForm: new Set(
        metadatas.filter((m) => m.name === FREE_FORM_OBJECT).map((m) => m.propertyName),
      ),
    };
    shapes.set(type, shape);
  }
  return shape.properties.size > 0 ? shape : undefined;
}

interface TypeMetadataStorage {
  findTypeMetadata(
    target: object,
    property: string,
  ): { typeFunction(options?: unknown): unknown } | undefined;
}

/**
 * class-transformer keeps `@Type` metadata in a storage its package index does not export;
 * @nestjs/mapped-types reads the same module for PickType and friends.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- no typings for this module path */
const { defaultMetadataStorage: typeStorage } = require('class-transformer/cjs/storage') as {
  defaultMetadataStorage: TypeMetadataStorage;
};
/* eslint-enable @typescript-eslint/no-require-imports */

/**
 * The class a property's `@Type(() => X)` names when X is itself a DTO (has validation
 * metadata), e.g. the batch's `tasks` items; undefined otherwise.
 */
export function nestedDto(type: object, property: string): (new () => object) | undefined {
  // findTypeMetadata looks at the class's ancestors too.
  const nested = typeStorage.findTypeMetadata(type, property)?.typeFunction() as
    (new () => object) | undefined;
  return nested && dtoShape(nested) ? nested : undefined;
}
