/**
 * The import rules of ARCHITECTURE.md, checked by `npm test` (`npm run lint:imports`). Folders, bottom to top:
 *   lib/  →  api/  →  table/  →  compile/        the pure core (compile/ also does no I/O)
 *   cluster/                                     the seam: IPC protocol, supervision, pod-wide policy state
 *   control/ (the primary)   dataplane/ (a worker)   the two wings, which never import each other
 *   run.ts, cmd/                                  choose the process shape
 */
/** Node modules that do I/O or reach outside the process (`node:crypto` hashing and `net.isIP` are pure and allowed). */
const IO_MODULES =
  '^(node:)?(fs|fs/promises|http|https|http2|tls|dgram|child_process|cluster|worker_threads|dns|os|process|readline|vm)$';

/** The pure core, bottom to top: each folder imports only the folders before it (and itself). */
const CORE_LAYERS = ['lib', 'api', 'table', 'compile'];

/** One rule per core folder, generated from CORE_LAYERS so that the order is written down once. */
function coreLayerRules() {
  return CORE_LAYERS.map((layer, i) => ({
    name: `${layer}-imports-only-below`,
    comment: `${layer}/ imports only ${CORE_LAYERS.slice(0, i + 1).join(', ')}.`,
    severity: 'error',
    from: { path: `^src/${layer}/` },
    to: { path: `^src/(?!(${CORE_LAYERS.slice(0, i + 1).join('|')})/)` },
  }));
}

/** The two wings never import each other. */
function wingRule(from, to, comment) {
  return {
    name: `${from}-not-${to}`,
    comment,
    severity: 'error',
    from: { path: `^src/${from}/` },
    to: { path: `^src/${to}/` },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      comment: 'Folders form a DAG: a cycle hides which one is below the other.',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src' },
      to: { circular: true },
    },
    {
      name: 'no-module-cycles',
      severity: 'error',
      from: { path: '^src' },
      to: { circular: true },
    },
    wingRule(
      'dataplane',
      'control',
      'A worker never imports the primary: what crosses goes through cluster/.',
    ),
    wingRule('control', 'dataplane', 'The primary never proxies; it knows workers only through cluster/.'),
    {
      name: 'cluster-is-the-seam',
      comment: 'cluster/ carries what crosses between the processes; it imports neither wing.',
      severity: 'error',
      from: { path: '^src/cluster/' },
      to: { path: '^src/(control|dataplane)/' },
    },
    {
      name: 'sources-report-facts',
      comment: 'A source reports facts; it never compiles routes nor writes status.',
      severity: 'error',
      from: { path: '^src/control/sources/' },
      to: { path: '^src/(compile|control/status)/' },
    },
    ...coreLayerRules(),
    {
      name: 'compile-is-pure',
      comment:
        'compile() is a pure function: no I/O, no processes (node:crypto only hashes, see compile.ts).',
      severity: 'error',
      from: { path: '^src/(compile|table|api|lib)/' },
      to: { dependencyTypes: ['core'], path: IO_MODULES },
    },
    {
      name: 'tests-and-cmd-not-imported',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|cmd|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
