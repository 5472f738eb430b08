/**
 * Unit specs sit beside the code and need no outside service. Integration specs need Redis,
 * RabbitMQ or PostgreSQL (`*.integration-spec.ts` beside the code) or run the driver
 * conformance suite (test/conformance); e2e suites live in test/e2e.
 * Nest 12 and several of its dependencies ship as ES modules, which Jest cannot require on
 * Node 20 (it can from Node 24.9). So SWC compiles everything Jest loads, node_modules
 * included, to CommonJS; the result is cached, and a cold run costs a few seconds.
 */
const swc = ['@swc/jest', { module: { type: 'commonjs', ignoreDynamic: false } }];
const common = {
  transform: { '^.+\\.(t|j)s$': swc },
  transformIgnorePatterns: [],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
};

module.exports = {
  // A bound on how long one test may wait for real processes and brokers, not a timing check.
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    {
      ...common,
      displayName: 'integration',
      rootDir: '.',
      roots: ['<rootDir>/src', '<rootDir>/test/conformance'],
      testRegex: '.*\\.(integration-spec|conformance-spec)\\.ts$',
    },
    { ...common, displayName: 'e2e', rootDir: 'test', testRegex: '.*\\.e2e-spec\\.ts$' },
  ],
};
