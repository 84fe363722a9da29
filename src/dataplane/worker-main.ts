/** The script every proxy worker process runs (`cluster.setupPrimary({ exec })`). */
import { runWorker } from './worker.ts';

runWorker();
