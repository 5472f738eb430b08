/**
 * Test support for queue drivers, kept apart from the queue module's own exports (and out of
 * the production build) because it loads jest.
 */
export * from './queue-driver.conformance';
export * from './broker-cleanup';
