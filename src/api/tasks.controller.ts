import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Query,
  Res,
  UseFilters,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { HttpAdapterHost } from '@nestjs/core';
import { type Actor, taskActorOf } from '../auth/actor';
import { assertMaySubmit } from '../auth/may-submit';
import { CurrentActor, RequireScopes } from '../auth/require-scopes.decorator';
import { CreateTaskDto } from '../tasks/dto/create-task.dto';
import { CreateTasksBatchDto } from './dto/create-tasks-batch.dto';
import { GetTaskQueryDto, ListTasksQueryDto, MAX_LIST_LIMIT } from './dto/list-tasks.query.dto';
import {
  TaskAcceptedResponseDto,
  TasksAcceptedResponseDto,
} from './dto/task-accepted.response.dto';
import { TaskListResponseDto, TaskResponseDto } from '../tasks/dto/task.response.dto';
import { InvalidTaskRequestError } from '../tasks/errors/invalid-task-request.error';
import { TaskErrorsFilter } from './task-errors.filter';
import { TasksService } from '../tasks/tasks.service';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

@ApiTags('tasks')
@Controller('tasks')
@UseFilters(TaskErrorsFilter)
export class TasksController {
  constructor(
    private readonly tasks: TasksService,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  @Post()
  @HttpCode(HttpStatus.ACCEPTED)
  @RequireScopes('tasks:write')
  @ApiOperation({ summary: 'Queue a task for a background worker' })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Same key and body again: 200 with the first task. Same key, other body: 409. Up to 255 visible ASCII characters.',
  })
  @ApiAcceptedResponse({ type: TaskAcceptedResponseDto, description: 'Stored and queued.' })
  @ApiOkResponse({
    type: TaskAcceptedResponseDto,
    description: 'An idempotent replay: the task the key created.',
  })
  @ApiBadRequestResponse({ description: 'Invalid JSON, a bad field, or an unknown action.' })
  @ApiConflictResponse({ description: 'The Idempotency-Key was used with a different body.' })
  @ApiResponse({ status: 429, description: 'QUEUE_MAX_DEPTH tasks are waiting; see Retry-After.' })
  async create(
    @Body() dto: CreateTaskDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) response: unknown,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TaskAcceptedResponseDto> {
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidTaskRequestError(['Idempotency-Key must be 1-255 visible ASCII characters']);
    }
    assertMaySubmit(actor, [dto.action]);
    const { task, created } = await this.tasks.create(dto, idempotencyKey, taskActorOf(actor));
    if (!created) this.adapterHost.httpAdapter.status(response, HttpStatus.OK);
    return { id: task.id, status: task.status };
  }

  @Post('batch')
  @HttpCode(HttpStatus.ACCEPTED)
  @RequireScopes('tasks:write')
  @ApiOperation({ summary: 'Queue up to 1000 tasks at once: all are accepted or none' })
  @ApiAcceptedResponse({ type: TasksAcceptedResponseDto })
  @ApiBadRequestResponse({
    description: 'Names the index and field of every bad task; nothing is stored.',
  })
  @ApiResponse({ status: 429, description: 'QUEUE_MAX_DEPTH tasks are waiting; see Retry-After.' })
  async createBatch(
    @Body() dto: CreateTasksBatchDto,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TasksAcceptedResponseDto> {
    assertMaySubmit(
      actor,
      dto.tasks.map((task) => task.action),
    );
    const tasks = await this.tasks.createMany(dto.tasks, taskActorOf(actor));
    return {
      tasks: tasks.map((task) => ({ id: task.id, status: task.status })),
      count: tasks.length,
    };
  }

  @Get()
  @RequireScopes('tasks:read')
  @ApiOperation({ summary: "List the key's tenant's tasks, newest first, a page at a time" })
  @ApiOkResponse({ type: TaskListResponseDto })
  @ApiBadRequestResponse({ description: 'A bad query parameter.' })
  async list(
    @Query() query: ListTasksQueryDto,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TaskListResponseDto> {
    const limit = query.limit ?? MAX_LIST_LIMIT;
    const rows = await this.tasks.list({
      tenant: taskActorOf(actor).tenant,
      status: query.status,
      action: query.action,
      createdAfter: query.createdAfter ? Date.parse(query.createdAfter) : undefined,
      createdBefore: query.createdBefore ? Date.parse(query.createdBefore) : undefined,
      before: query.cursor ? decodeCursor(query.cursor) : undefined,
      limit,
    });
    const tasks = rows.map((row) => TaskResponseDto.from(row));
    const last = rows[rows.length - 1];
    return {
      tasks,
      count: tasks.length,
      nextCursor: rows.length === limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  @Get(':id')
  @RequireScopes('tasks:read')
  @ApiOperation({
    summary: 'One task with its status and result; optionally wait for it to finish',
  })
  @ApiOkResponse({ type: TaskResponseDto })
  @ApiNotFoundResponse({ description: "No task of the key's tenant has this id." })
  async findOne(
    @Param('id') id: string,
    @Query() query: GetTaskQueryDto,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TaskResponseDto> {
    const { tenant } = taskActorOf(actor);
    const task = query.waitMs
      ? await this.tasks.waitFor(id, query.waitMs, tenant)
      : await this.tasks.findOne(id, tenant);
    return TaskResponseDto.from(task);
  }

  @Post(':id/cancel')
  @HttpCode(HttpStatus.OK)
  @RequireScopes('tasks:cancel')
  @ApiOperation({ summary: 'Cancel a queued or running task (a running one is aborted)' })
  @ApiOkResponse({ type: TaskResponseDto })
  @ApiNotFoundResponse({ description: 'No task has this id.' })
  @ApiConflictResponse({ description: 'The task already ended.' })
  async cancel(
    @Param('id') id: string,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TaskResponseDto> {
    return TaskResponseDto.from(await this.tasks.cancel(id, taskActorOf(actor).tenant));
  }

  @Post(':id/retry')
  @HttpCode(HttpStatus.ACCEPTED)
  @RequireScopes('tasks:write')
  @ApiOperation({ summary: 'Queue a failed or cancelled task again with fresh attempts' })
  @ApiAcceptedResponse({ type: TaskResponseDto })
  @ApiNotFoundResponse({ description: 'No task has this id.' })
  @ApiConflictResponse({ description: 'The task is not failed or cancelled.' })
  async retry(
    @Param('id') id: string,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TaskResponseDto> {
    const task = await this.tasks.retry(id, taskActorOf(actor).tenant, ({ action }) =>
      assertMaySubmit(actor, [action]),
    );
    return TaskResponseDto.from(task);
  }
}

/** Cursors are opaque to clients: the last row's (createdAt, id), base64url-encoded. */
function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown[];
    if (typeof createdAt === 'number' && typeof id === 'string') return { createdAt, id };
  } catch {
    // fall through to the 400 below
  }
  throw new InvalidTaskRequestError(['cursor is not a cursor this API returned']);
}
