// Preloaded by bench/ab-worker.sh when PROFILE is set (`--import`, inherited by the cluster workers through
// NODE_OPTIONS): the first SIGUSR2 starts V8's CPU profiler in this process, the next one stops it and writes
// $EDGEGATE_PROFILE_DIR/<primary|worker>-<pid>.cpuprofile, so a profile covers the measured load and nothing else.
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
    session.post('Profiler.enable', () =>
      session.post('Profiler.setSamplingInterval', { interval: 200 }, () => session.post('Profiler.start')),
    );
    return;
  }
  session.post('Profiler.stop', (err, result) => {
    if (err) throw err;
    const role = cluster.isWorker ? 'worker' : 'primary';
    writeFileSync(`${dir}/${role}-${process.pid}.cpuprofile`, JSON.stringify(result.profile));
  });
});
