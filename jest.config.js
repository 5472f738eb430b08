/**
 * Unit specs sit beside the code; e2e and conformance suites live in test/.
 * Nest 12 ships as ES modules, which Jest cannot require on Node 20: SWC compiles them to
 * CommonJS on the way in (cached after the first run).
 */
const swc = ['@swc/jest', { module: { type: 'commonjs', ignoreDynamic: false } }];
const common = {
  transform: { '^.+\\.(t|j)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!@nestjs/)'],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    {
      ...common,
      displayName: 'e2e',
      rootDir: 'test',
      testRegex: '.*\\.(e2e-spec|conformance-spec)\\.ts$',
    },
  ],
};
