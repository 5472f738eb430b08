import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  Post,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProperty,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { RequireScopes } from '../auth/require-scopes.decorator';
import { TimeoutError, within } from '../common/within';
import { TaskStatements } from '../persistence/task-statements';
import {
  DriverUnavailableError,
  QueueConsumerService,
  QueueDriverRegistry,
  UnknownQueueError,
} from '../queue';

/** How long a queue call waits for its broker before answering 503. */
const BROKER_CALL_TIMEOUT_MS = 5000;

class QueueConsumerDto {
  @ApiProperty() concurrency!: number;
  @ApiProperty() prefetch!: number;
  @ApiProperty({ description: 'Workers running a handler now (this process).' }) busy!: number;
  @ApiProperty({ description: 'Deliveries buffered ahead of the workers (this process).' })
  buffered!: number;
}

class QueueDto {
  @ApiProperty({ example: 'tasks' }) name!: string;
  @ApiProperty({ example: 'sqlite' }) driver!: string;
  @ApiProperty({ description: 'Deliverable now, as the broker counts its messages.' })
  waiting!: number;
  @ApiProperty({
    description:
      'Tasks of this queue that the task table holds queued and due now: the truth, whatever the broker says. Above `waiting` + `inFlight` while messages are missing (a broker that lost data, a publish that failed); the reconciler publishes those again.',
  })
  queuedTasks!: number;
  @ApiProperty({ description: 'Delivered, not yet acknowledged.' }) inFlight!: number;
  @ApiProperty({ description: 'Waiting for a delay or a retry backoff.' }) delayed!: number;
  @ApiProperty({
    description:
      "In the driver's dead-letter store: tasks that used up their attempts, and messages the driver could not decode (kept with the reason).",
  })
  failed!: number;
  @ApiProperty() paused!: boolean;
  @ApiProperty({ type: [QueueConsumerDto], description: "This process's consumers of the queue." })
  consumers!: QueueConsumerDto[];
}

class QueueListDto {
  @ApiProperty({ type: [QueueDto] }) queues!: QueueDto[];
}

const QUEUE_NAME = { name: 'name', description: 'A queue name, as `GET /queues` lists them.' };

/**
 * Queue state and control. Counts come from the driver, except `queuedTasks` (the task table);
 * consumers are this process's.
 */
@ApiTags('queues')
@Controller('queues')
// Queues are shared by every tenant: reading and pausing them is an operator's job.
@RequireScopes('queues:admin')
export class QueuesController {
  constructor(
    private readonly registry: QueueDriverRegistry,
    private readonly consumers: QueueConsumerService,
    private readonly tasks: TaskStatements,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Every queue with its counts, pause state and consumers' })
  @ApiOkResponse({ type: QueueListDto })
  @ApiServiceUnavailableResponse({ description: 'A queue broker is down or does not answer.' })
  async list(): Promise<QueueListDto> {
    return {
      queues: await Promise.all(this.registry.queueNames().map((name) => this.describe(name))),
    };
  }

  @Post(':name/pause')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Stop delivering the queue (it still accepts tasks); durable drivers remember it',
  })
  @ApiParam(QUEUE_NAME)
  @ApiOkResponse({ type: QueueDto })
  @ApiNotFoundResponse({ description: 'No such queue.' })
  @ApiServiceUnavailableResponse({ description: 'The queue broker is down or does not answer.' })
  async pause(@Param('name') name: string): Promise<QueueDto> {
    await this.broker(name, (driver) => driver.pauseQueue(name));
    return this.describe(name);
  }

  @Post(':name/resume')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Deliver the queue again' })
  @ApiParam(QUEUE_NAME)
  @ApiOkResponse({ type: QueueDto })
  @ApiNotFoundResponse({ description: 'No such queue.' })
  @ApiServiceUnavailableResponse({ description: 'The queue broker is down or does not answer.' })
  async resume(@Param('name') name: string): Promise<QueueDto> {
    await this.broker(name, (driver) => driver.resumeQueue(name));
    return this.describe(name);
  }

  private driverOf(name: string) {
    try {
      return this.registry.driverFor(name);
    } catch (error) {
      if (error instanceof UnknownQueueError) throw new NotFoundException(error.message);
      throw error;
    }
  }

  /**
   * A call to the broker of `name`, bounded: an unreachable or silent broker answers 503 naming
   * the queue instead of holding the request while its client reconnects.
   */
  private async broker<R>(
    name: string,
    call: (driver: ReturnType<QueuesController['driverOf']>) => Promise<R>,
  ): Promise<R> {
    try {
      return await within(call(this.driverOf(name)), BROKER_CALL_TIMEOUT_MS, `queue ${name}`);
    } catch (error) {
      if (error instanceof DriverUnavailableError || error instanceof TimeoutError) {
        throw new ServiceUnavailableException(`queue broker unavailable: ${error.message}`);
      }
      throw error;
    }
  }

  private async describe(name: string): Promise<QueueDto> {
    const driver = this.driverOf(name);
    const [stats, queuedTasks] = await Promise.all([
      this.broker(name, (d) => d.stats(name)),
      this.tasks.countQueuedDue(name, Date.now()),
    ]);
    return {
      name,
      driver: driver.kind,
      waiting: stats.ready,
      queuedTasks,
      inFlight: stats.inFlight,
      delayed: stats.delayed,
      failed: stats.dead,
      paused: stats.paused,
      consumers: this.consumers
        .stats()
        .filter((pool) => pool.queue === name)
        .map(({ concurrency, prefetch, busy, buffered }) => ({
          concurrency,
          prefetch,
          busy,
          buffered,
        })),
    };
  }
}
