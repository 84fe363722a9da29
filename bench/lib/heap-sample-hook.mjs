// Preloaded like bench/lib/profile-hook.mjs, for allocations instead of time: the first SIGUSR2 starts V8's sampling
// heap profiler in this process (every object sampled about once per 256 bytes allocated, those the young- and the
// old-generation collectors freed since included: what a request allocates, not what stays), the next one stops it
// and writes $EDGEGATE_PROFILE_DIR/<primary|worker>-<pid>.heapprofile. bench/ab-worker.sh uses it with
// PROFILE=DIR HEAP=1; bench/heapprofile-self.ts sums it up per function.
import cluster from 'node:cluster';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.EDGEGATE_PROFILE_DIR;
const session = new Session();
session.connect();
let running = false;
process.on('SIGUSR2', () => {
  running = !running;
  if (running) {
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return;
  }
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) throw err;
    const role = cluster.isWorker ? 'worker' : 'primary';
    writeFileSync(`${dir}/${role}-${process.pid}.heapprofile`, JSON.stringify(result.profile));
  });
});
