/**
 * Carries task events between the processes of one deployment. A bus moves opaque messages (a
 * JSON batch of events with the sending process's id, see TaskEvents): every process that
 * started the bus receives every message published on it, its own included, in publish order
 * per sender. Delivery is best effort: a message published while the transport is down is lost
 * (readers that must not miss a change re-read the task table, as long polls do).
 */
export abstract class TaskEventBus {
  /** `sqlite`, `postgres` or `redis`, for the boot log. */
  abstract readonly kind: string;

  /** Connects and starts calling `onMessage` with every message published from now on. */
  abstract start(onMessage: (message: string) => void): Promise<void>;

  /** Sends one message to every process; rejects when the transport refused it. */
  abstract publish(message: string): Promise<void>;

  /**
   * Sends messages in order, each on its own unless the transport can do better; a message the
   * transport refused is passed to `failed`, and the next ones are still sent.
   */
  async publishAll(messages: string[], failed: (error: unknown) => void): Promise<void> {
    for (const message of messages) {
      try {
        await this.publish(message);
      } catch (error) {
        failed(error);
      }
    }
  }

  /** Stops receiving and closes the bus's own connections. */
  abstract close(): Promise<void>;
}

/** Largest message a bus must carry: PostgreSQL's NOTIFY payload limit is 8000 bytes. */
export const MAX_EVENT_MESSAGE_BYTES = 7000;
