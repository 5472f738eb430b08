import { Type } from 'class-transformer';
import { IsArray, IsInt, IsNumber, IsOptional, IsString, Max, Min } from 'class-validator';

export class UppercaseData {
  @IsOptional()
  @IsString()
  text?: string;
}

export class SumData {
  @IsOptional()
  @IsArray()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { each: true })
  numbers?: number[];
}

export class SleepData {
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(600_000)
  ms!: number;

  /** Progress reports: the sleep is cut into this many equal parts, one report after each. */
  @IsOptional()
  @Type(() => Number)
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
