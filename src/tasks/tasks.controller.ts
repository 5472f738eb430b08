import {
  Body,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Query,
  UseFilters,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { CreateTaskDto } from './dto/create-task.dto';
import { ListTasksQueryDto, MAX_LIST_LIMIT } from './dto/list-tasks.query.dto';
import { TaskAcceptedResponseDto } from './dto/task-accepted.response.dto';
import { TaskListResponseDto, TaskResponseDto } from './dto/task.response.dto';
import { TaskErrorsFilter } from './task-errors.filter';
import { TasksService } from './tasks.service';

@ApiTags('tasks')
@Controller('tasks')
@UseFilters(TaskErrorsFilter)
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  @Post()
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({ summary: 'Queue a task for a background worker' })
  @ApiAcceptedResponse({ type: TaskAcceptedResponseDto, description: 'Stored and queued.' })
  @ApiBadRequestResponse({ description: 'Invalid JSON, a bad field, or an unknown action.' })
  async create(@Body() dto: CreateTaskDto): Promise<TaskAcceptedResponseDto> {
    const task = await this.tasks.create(dto);
    return { id: task.id, status: task.status };
  }

  @Get()
  @ApiOperation({ summary: 'List tasks, newest first' })
  @ApiOkResponse({ type: TaskListResponseDto })
  @ApiBadRequestResponse({ description: 'A bad query parameter.' })
  async list(@Query() query: ListTasksQueryDto): Promise<TaskListResponseDto> {
    const rows = await this.tasks.list({
      status: query.status,
      limit: query.limit ?? MAX_LIST_LIMIT,
    });
    const tasks = rows.map((row) => TaskResponseDto.from(row));
    return { tasks, count: tasks.length };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One task with its status and result' })
  @ApiOkResponse({ type: TaskResponseDto })
  @ApiNotFoundResponse({ description: 'No task has this id.' })
  async findOne(@Param('id') id: string): Promise<TaskResponseDto> {
    return TaskResponseDto.from(await this.tasks.findOne(id));
  }
}
