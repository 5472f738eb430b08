/**
 * A write of the application's that goes with a driver's operation: the outcome that goes with
 * a settle (settleWith). It is committed first, then the driver settles ("ack last"); where the
 * task row is the message (the table drivers), committing the outcome is the settle itself.
 */
export interface SharedWrite {
  /** On its own: resolves once committed, with whether the write applied. */
  commit(): Promise<boolean>;
  /** After the write committed, with what `commit` answered. */
  committed(applied: boolean): void;
}
