import { Module } from '@nestjs/common';
import { BuiltinHandlers } from './builtin.handlers';

@Module({ providers: [BuiltinHandlers] })
export class HandlersModule {}
