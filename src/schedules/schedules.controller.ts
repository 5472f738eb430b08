import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Put,
  Query,
  Res,
  UseFilters,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { RequireScopes } from '../auth/require-scopes.decorator';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import {
  CreateScheduleDto,
  PutScheduleDto,
  SCHEDULE_NAME_PATTERN,
} from './dto/create-schedule.dto';
import { ListSchedulesQueryDto } from './dto/list-schedules.query.dto';
import {
  ScheduleListResponseDto,
  ScheduleResponseDto,
  ScheduleRunResponseDto,
} from './dto/schedule.response.dto';
import { ScheduleErrorsFilter } from './schedule-errors.filter';
import { InvalidScheduleError } from './schedule.errors';
import { SchedulesService } from './schedules.service';

const NAME = { name: 'name', description: 'The schedule name.', example: 'nightly-report' };

@ApiTags('schedules')
@Controller('schedules')
// Schedules are the operator's: not per tenant, and their tasks run in the default tenant.
@RequireScopes('admin')
@UseFilters(ScheduleErrorsFilter)
export class SchedulesController {
  constructor(
    private readonly schedules: SchedulesService,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  @Post()
  @ApiOperation({
    summary: 'Create a schedule: a task of `action` at every cron or `every` tick',
    description:
      'Each tick becomes one ordinary task (idempotency key `schedule:<name>:<tick ISO time>`), exactly once however many worker processes run the scheduler.',
  })
  @ApiCreatedResponse({ type: ScheduleResponseDto, description: 'Stored, with its nextRunAt.' })
  @ApiBadRequestResponse({
    description:
      'A bad field, named: cron, every (at least 1s), timezone, action (no handler and no fallback), data, ...',
  })
  @ApiConflictResponse({ description: 'A schedule of that name exists.' })
  create(@Body() dto: CreateScheduleDto): Promise<ScheduleResponseDto> {
    return this.schedules.create(dto);
  }

  @Get()
  @ApiOperation({ summary: 'Every schedule by name: next and last run, last task and status' })
  @ApiOkResponse({ type: ScheduleListResponseDto })
  async list(@Query() query: ListSchedulesQueryDto): Promise<ScheduleListResponseDto> {
    const { schedules, nextCursor } = await this.schedules.list(query.limit ?? 100, query.cursor);
    return { schedules, count: schedules.length, nextCursor };
  }

  @Get(':name')
  @ApiOperation({ summary: 'One schedule' })
  @ApiParam(NAME)
  @ApiOkResponse({ type: ScheduleResponseDto })
  @ApiNotFoundResponse({ description: 'No schedule of that name.' })
  get(@Param('name') name: string): Promise<ScheduleResponseDto> {
    return this.schedules.get(name);
  }

  @Put(':name')
  @ApiOperation({
    summary: 'Create or replace a schedule by name',
    description:
      'Replacing keeps its counters and last run; a paused schedule stays paused; the next run is computed from now. Code-declared schedules are changed in code (409).',
  })
  @ApiParam(NAME)
  @ApiOkResponse({ type: ScheduleResponseDto, description: 'Replaced.' })
  @ApiCreatedResponse({ type: ScheduleResponseDto, description: 'Created.' })
  @ApiBadRequestResponse({ description: 'A bad field, named.' })
  @ApiConflictResponse({ description: 'The schedule is declared in code.' })
  async put(
    @Param('name') name: string,
    @Body() dto: PutScheduleDto,
    @Res({ passthrough: true }) response: unknown,
  ): Promise<ScheduleResponseDto> {
    if (!SCHEDULE_NAME_PATTERN.test(name)) {
      throw new InvalidScheduleError([
        'name must be a letter or digit, then up to 127 letters, digits, _ . : or - (no spaces or slashes)',
      ]);
    }
    const { schedule, created } = await this.schedules.put({ ...dto, name });
    this.adapterHost.httpAdapter.status(response, created ? HttpStatus.CREATED : HttpStatus.OK);
    return schedule;
  }

  @Post(':name/pause')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Pause: no tick runs until resumed (pausing twice is fine)' })
  @ApiParam(NAME)
  @ApiOkResponse({ type: ScheduleResponseDto })
  @ApiNotFoundResponse({ description: 'No schedule of that name.' })
  @ApiConflictResponse({ description: 'The schedule is finished or disabled.' })
  pause(@Param('name') name: string): Promise<ScheduleResponseDto> {
    return this.schedules.pause(name);
  }

  @Post(':name/resume')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Resume from the next tick after now (ticks that fell while paused do not run)',
  })
  @ApiParam(NAME)
  @ApiOkResponse({ type: ScheduleResponseDto })
  @ApiNotFoundResponse({ description: 'No schedule of that name.' })
  @ApiConflictResponse({ description: 'The schedule is finished or disabled.' })
  resume(@Param('name') name: string): Promise<ScheduleResponseDto> {
    return this.schedules.resume(name);
  }

  @Post(':name/trigger')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    summary: 'Run now: one task outside the ticks (paused or not; not counted against limit)',
  })
  @ApiParam(NAME)
  @ApiAcceptedResponse({ type: ScheduleRunResponseDto })
  @ApiNotFoundResponse({ description: 'No schedule of that name.' })
  @ApiBadRequestResponse({ description: "The schedule's action no longer has a handler." })
  @ApiResponse({ status: 429, description: 'QUEUE_MAX_DEPTH tasks are waiting; see Retry-After.' })
  async trigger(@Param('name') name: string): Promise<ScheduleRunResponseDto> {
    const task = await this.schedules.trigger(name);
    return { id: task.id, status: task.status };
  }

  @Delete(':name')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOperation({ summary: 'Delete a schedule (its tasks stay)' })
  @ApiParam(NAME)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @ApiNotFoundResponse({ description: 'No schedule of that name.' })
  async delete(@Param('name') name: string): Promise<void> {
    await this.schedules.delete(name);
  }
}
