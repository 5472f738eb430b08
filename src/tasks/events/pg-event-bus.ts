import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { TaskEventBus } from './task-event-bus';

/** Reconnect delays after the listening connection drops: doubling up to the last. */
const RECONNECT_MS = [250, 500, 1000, 2000, 5000];

/**
 * The event bus of a PostgreSQL deployment: NOTIFY on a channel named after the task table's
 * schema, LISTEN on one connection of this process's own (outside the pool, since a listening
 * session must stay open). Deployments in other schemas of the same database do not hear each
 * other. NOTIFY is sent after the task change committed, from that same connection.
 */
export class PgEventBus extends TaskEventBus {
  readonly kind = 'postgres';
  private readonly logger = new Logger(PgEventBus.name);
  private client?: Client;
  private channel?: string;
  private onMessage?: (message: string) => void;
  private closing = false;
  private retries = 0;
  private reconnectTimer?: NodeJS.Timeout;

  /** `url` may carry a password: it is never logged. */
  constructor(private readonly url: string) {
    super();
  }

  async start(onMessage: (message: string) => void): Promise<void> {
    this.onMessage = onMessage;
    await this.connect();
  }

  async publish(message: string): Promise<void> {
    if (!this.client || !this.channel) throw new Error('the PostgreSQL event connection is down');
    await this.client.query('SELECT pg_notify($1, $2)', [this.channel, message]);
  }

  /**
   * One statement for all of them: one round trip and one commit, rather than one per message
   * (a bulk create of 500 tasks makes a dozen). Each commit that notifies takes a lock on the
   * database that every notifying commit waits for, the task inserts' (their NOTIFY trigger)
   * among them. Notifications of one transaction are delivered in order.
   */
  override async publishAll(messages: string[], failed: (error: unknown) => void): Promise<void> {
    if (messages.length === 0) return;
    if (messages.length === 1) return super.publishAll(messages, failed);
    try {
      if (!this.client || !this.channel) throw new Error('the PostgreSQL event connection is down');
      // As one JSON array: pg escapes a text[] element by element, slowly for JSON messages.
      await this.client.query(
        `SELECT pg_notify($1, m) FROM json_array_elements_text($2::json) WITH ORDINALITY AS v(m, i)
         ORDER BY i`,
        [this.channel, JSON.stringify(messages)],
      );
    } catch (error) {
      failed(error);
    }
  }

  /** The server process of the listening connection (pg_stat_activity.pid), while connected. */
  get backendPid(): number | undefined {
    return (this.client as unknown as { processID?: number } | undefined)?.processID;
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    // Named, so an operator can tell the listening session apart in pg_stat_activity.
    const client = new Client({ connectionString: this.url, application_name: 'taskq-events' });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    client.on('notification', (note) => {
      if (note.channel === this.channel && note.payload !== undefined)
        this.onMessage?.(note.payload);
    });
    await client.connect();
    try {
      const { rows } = await client.query<{ db: string; schema: string }>(
        'SELECT current_database() AS db, current_schema() AS schema',
      );
      this.channel = channelName(rows[0].schema);
      await client.query(`LISTEN "${this.channel}"`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
    this.retries = 0;
  }

  private lost(client: Client, error?: Error): void {
    if (this.closing || this.client !== client) return;
    this.client = undefined;
    this.logger.warn(
      `the PostgreSQL event connection dropped${error ? `: ${error.message}` : ''}; reconnecting (events meanwhile are missed)`,
    );
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = RECONNECT_MS[Math.min(this.retries, RECONNECT_MS.length - 1)];
    this.retries += 1;
    this.reconnectTimer = setTimeout(() => {
      if (this.closing) return;
      this.connect().catch((error: unknown) => {
        this.logger.warn(`reconnecting for task events failed: ${(error as Error).message}`);
        this.scheduleReconnect();
      });
    }, delay).unref();
  }
}

/**
 * `taskq_events_<schema>`; a schema name too long for a 63-byte channel is replaced by its hash.
 * Channel names are case-sensitive in pg_notify and quoted in LISTEN, so both agree.
 */
export function channelName(schema: string): string {
  const name = `taskq_events_${schema}`;
  if (Buffer.byteLength(name) <= 63) return name;
  return `taskq_events_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}
