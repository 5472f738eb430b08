/**
 * Architecture rules, checked by `npm run lint` (docs/architecture.md explains the modules).
 * Each rule is one boundary a newcomer could cross by accident; the message says which.
 */
const FEATURES =
  'api|callbacks|handlers|health|maintenance|observability|persistence|queue|queues|schedules|tasks|worker';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: modules must depend on each other in one direction.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'queue-knows-no-tasks',
      severity: 'error',
      comment:
        'src/queue moves messages: it knows nothing of tasks, their table, the API or the app config.',
      from: { path: '^src/queue/' },
      to: {
        path: '^src/(api|callbacks|handlers|health|maintenance|observability|persistence|queues|schedules|tasks|worker|config)/',
      },
    },
    {
      name: 'api-uses-no-driver',
      severity: 'error',
      comment: 'The API talks to queues through the publisher and registry, never to a driver.',
      from: { path: '^src/(api|queues|schedules)/' },
      to: { path: '^src/queue/drivers/' },
    },
    {
      name: 'config-imports-no-feature',
      severity: 'error',
      comment: 'src/config parses the environment; feature modules depend on it, not the reverse.',
      from: { path: '^src/config/' },
      to: { path: `^src/(${FEATURES})/` },
    },
    {
      name: 'common-imports-no-feature',
      severity: 'error',
      comment: 'src/common holds primitives every module may use; it depends on none of them.',
      from: { path: '^src/common/' },
      to: { path: `^src/(${FEATURES}|config)/` },
    },
    {
      name: 'cli-is-an-http-client',
      severity: 'error',
      comment: 'src/cli talks to a deployment over HTTP only: it imports nothing of the service.',
      from: { path: '^src/cli/' },
      to: { path: '^src/', pathNot: '^src/cli/' },
    },
    {
      name: 'production-code-loads-no-tests',
      severity: 'error',
      comment: 'Code under src/ (but specs) must not import test helpers or jest.',
      from: { path: '^src/', pathNot: '\\.(spec|integration-spec)\\.ts$|^src/queue/testing/' },
      to: { path: '^(test/|node_modules/(@jest|jest)/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
