/** Development entry point: `npx tsx src/cli/run.ts users list` without building dist/. */
import { main } from './main.js';

process.exitCode = await main(process.argv);
