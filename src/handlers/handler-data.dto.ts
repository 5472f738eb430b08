import { IsArray, IsInt, IsNumber, IsOptional, IsString, Max, Min } from 'class-validator';

/*
 * The built-in handlers' `data` types: `POST /tasks` answers 400 naming the field when data
 * does not fit (see handlerDataProblems). Values are checked as sent, never converted.
 */

export class UppercaseData {
  @IsString()
  text!: string;
}

export class SumData {
  @IsArray()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { each: true })
  numbers!: number[];
}

export class SleepData {
  @IsInt()
  @Min(0)
  @Max(600_000)
  ms!: number;

  /** Progress reports: the sleep is cut into this many equal parts, one report after each. */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100)
  steps?: number;
}

export class FailData {
  @IsOptional()
  @IsInt()
  @Min(0)
  times?: number;

  @IsOptional()
  @IsString()
  message?: string;
}
