// Preloaded by bench/ab-worker.sh when PROFILE is set (`--import`, inherited by the cluster workers through
// NODE_OPTIONS): the first SIGUSR2 starts V8's CPU profiler in this process, the next one stops it and writes
// $EDGEGATE_PROFILE_DIR/<primary|worker>-<pid>.cpuprofile, so a profile covers the measured load and nothing else.
// With EDGEGATE_PROFILE_HEAP=1 (bench/ab-worker.sh's HEAP=1) it runs V8's sampling heap profiler instead — every
// object sampled about once per 256 bytes allocated, those the young- and old-generation collectors freed included
// (what a request allocates, not what stays) — and writes <primary|worker>-<pid>.heapprofile
// (bench/heapprofile-self.ts sums it up per function).
import cluster from 'node:cluster';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.EDGEGATE_PROFILE_DIR;
const heap = process.env.EDGEGATE_PROFILE_HEAP === '1';
const session = new Session();
session.connect();
let running = false;

function write(ext, data) {
  const role = cluster.isWorker ? 'worker' : 'primary';
  writeFileSync(`${dir}/${role}-${process.pid}.${ext}`, JSON.stringify(data));
}

process.on('SIGUSR2', () => {
  running = !running;
  if (heap) {
    if (running)
      session.post('HeapProfiler.startSampling', {
        samplingInterval: 256,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    else
      session.post('HeapProfiler.stopSampling', (err, result) => {
        if (err) throw err;
        write('heapprofile', result.profile);
      });
    return;
  }
  if (running) {
    session.post('Profiler.enable', () =>
      session.post('Profiler.setSamplingInterval', { interval: 200 }, () => session.post('Profiler.start')),
    );
    return;
  }
  session.post('Profiler.stop', (err, result) => {
    if (err) throw err;
    write('cpuprofile', result.profile);
  });
});
