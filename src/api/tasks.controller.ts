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
  ApiParam,
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
const TASK_ID = { name: 'id', description: 'The task id `POST /tasks` answered.' };

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
  @ApiOperation({
    summary: 'Queue a task for a background worker',
    description:
      "Validates the task (its action must have a handler, or a `*` handler must exist; its `data` must fit the handler's data type), stores it `queued` and hands it to the queue. Read it back with `GET /tasks/{id}` (add `waitMs` to wait for the end). With `callbackUrl`, the task's JSON is POSTed there when it ends (see the callback).",
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Same key and body again: 200 with the id and current status of the task the key created. Same key, other body: 409. Up to 255 visible ASCII characters.',
    schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
  })
  @ApiAcceptedResponse({ type: TaskAcceptedResponseDto, description: 'Stored and queued.' })
  @ApiOkResponse({
    type: TaskAcceptedResponseDto,
    description:
      'An idempotent replay: the id and current status of the task the key created (nothing new is stored).',
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
  @ApiOperation({
    summary: 'Queue up to 1000 tasks at once: all are accepted or none',
    description:
      'Each task is checked as `POST /tasks` checks one; a bad one fails the whole batch with 400 naming `tasks.N.field`, and nothing is stored. The tasks are stored in one transaction.',
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Same key and body again (a retry that never saw the answer): 200 with the tasks the first request created, none added. Same key, other body: 409. Up to 255 visible ASCII characters.',
  })
  @ApiAcceptedResponse({ type: TasksAcceptedResponseDto })
  @ApiOkResponse({
    type: TasksAcceptedResponseDto,
    description: 'An idempotent replay: the tasks the key created, with their current status.',
  })
  @ApiConflictResponse({ description: 'The Idempotency-Key was used with a different body.' })
  @ApiBadRequestResponse({
    description: 'Names the index and field of every bad task; nothing is stored.',
  })
  @ApiResponse({ status: 429, description: 'QUEUE_MAX_DEPTH tasks are waiting; see Retry-After.' })
  async createBatch(
    @Body() dto: CreateTasksBatchDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) response: unknown,
    @CurrentActor() actor: Actor | undefined,
  ): Promise<TasksAcceptedResponseDto> {
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidTaskRequestError(['Idempotency-Key must be 1-255 visible ASCII characters']);
    }
    assertMaySubmit(
      actor,
      dto.tasks.map((task) => task.action),
    );
    const { tasks, created } = await this.tasks.createBatch(
      dto.tasks,
      idempotencyKey,
      taskActorOf(actor),
    );
    if (!created) this.adapterHost.httpAdapter.status(response, HttpStatus.OK);
    return {
      tasks: tasks.map((task) => ({ id: task.id, status: task.status })),
      count: tasks.length,
    };
  }

  @Get()
  @RequireScopes('tasks:read')
  @ApiOperation({
    summary: "List the key's tenant's tasks, newest first, a page at a time",
    description:
      'At most `limit` tasks (default 100) matching every filter given. `count` is the size of this page, not a total; pass `nextCursor` as `cursor` for the next (older) page, which stays stable while tasks are added.',
  })
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
    description:
      'With `waitMs`, answers as soon as the task is completed, failed or cancelled, or when `waitMs` runs out (then with the task as it is); no tight polling needed.',
  })
  @ApiParam(TASK_ID)
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
  @ApiOperation({
    summary: 'Cancel a queued or running task (a running one is aborted)',
    description:
      "A queued task never runs; a running one's AbortSignal fires wherever it runs, and it ends `cancelled` without a retry. Answers the task as it is now.",
  })
  @ApiParam(TASK_ID)
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
  @ApiOperation({
    summary: 'Queue a failed or cancelled task again with fresh attempts',
    description: 'The dead-letter redrive: `attempt` starts again from 0 and the task is queued.',
  })
  @ApiParam(TASK_ID)
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
