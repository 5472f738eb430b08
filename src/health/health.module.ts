import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PersistenceModule } from '../persistence/persistence.module';
import { HealthController } from './health.controller';
import { DatabaseIndicator } from './indicators/database.indicator';
import { QueueDriversIndicator } from './indicators/queue-drivers.indicator';
import { READINESS_INDICATORS, type ReadinessIndicator } from './indicators/readiness-indicator';
import { ShutdownState } from './shutdown-state';

/** What readiness checks, in order. One more check: its indicator class here. */
const INDICATORS = [DatabaseIndicator, QueueDriversIndicator];

@Module({
  // Terminus logs a failed check itself; the 503 body already names the part.
  imports: [PersistenceModule, TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [
    ShutdownState,
    ...INDICATORS,
    {
      provide: READINESS_INDICATORS,
      inject: INDICATORS,
      useFactory: (...indicators: ReadinessIndicator[]) => indicators,
    },
  ],
  exports: [ShutdownState],
})
export class HealthModule {}
