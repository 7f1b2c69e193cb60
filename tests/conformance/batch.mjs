// Runs the conformance suite's CLI several times in one Node process: `node batch.mjs <suite's
// index.js> <marker> <args as JSON> [<args as JSON> ...]`. Each run is the CLI as `node index.js
// <args>` runs it (a fresh copy of the suite's module, imported again, parses those arguments); its
// process.exit(code) ends the run instead of the process. Before each run the marker line is
// printed, after it "<marker> exit <code>", so the caller can tell the runs' output apart. What one
// run would have left behind (a timer, an open socket) ends with the process, after the last run.
// It saves a Node start and a load of the suite per run, most of a short run's CPU.
import { pathToFileURL } from "node:url";

const [suite, marker, ...runs] = process.argv.slice(2);
const url = pathToFileURL(suite).href;
const exit = process.exit.bind(process);
let finished = null;

// The CLI's action goes on after a skip's process.exit(0) and exits again at its end: the first
// code is the run's, as it is for a process.
process.exit = (code = 0) => {
  if (finished !== null) {
    const finish = finished;
    finished = null;
    finish(Number(code) || 0);
  }
};

// A run that failed without exiting (a rejected promise nobody awaited) ends as the CLI would have.
process.on("unhandledRejection", (error) => {
  console.error(error);
  process.exit(1);
});

for (const [index, args] of runs.entries()) {
  const done = new Promise((resolve) => {
    finished = resolve;
  });
  console.log(marker);
  process.argv = [process.argv[0], suite, ...JSON.parse(args)];
  try {
    await import(`${url}?run=${index}`);
  } catch (error) {
    console.error(error);
    process.exit(1);
  }
  console.log(`${marker} exit ${await done}`);
}
exit(0);
